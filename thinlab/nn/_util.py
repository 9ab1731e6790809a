"""Helpers shared by the ``thinlab.nn`` modules (private)."""
from __future__ import annotations


def device_of(model):
    """The device of ``model``'s first parameter or buffer (CPU when it has neither)."""
    from thinlab.train import model_device

    return model_device(model)


def plain_step(model, xb, yb, opt, loss_fn):
    """One plain float32 optimiser step on the batch ``(xb, yb)``.

    Returns ``(loss, logits, False)``, what a :func:`thinlab.train.fit` ``step_fn`` returns
    (``False``: the step was not skipped).
    """
    opt.zero_grad(set_to_none=True)
    logits = model(xb)
    loss = loss_fn(logits, yb)
    loss.backward()
    opt.step()
    return loss, logits, False
