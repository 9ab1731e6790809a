"""Tiered hints never contain the answer: every exercise has a concept, an approach and a shape of the
code, and neither a hint tier nor a check's failure message holds a line of the reference solution (or of
the library function it calls), a known one-line answer, or anything ``release.solution_leaks`` flags."""
from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap

import numpy as np
import pytest

from thinlab import checks
from thinlab.classroom.release import solution_leaks

hints_mod = importlib.import_module("thinlab.checks.hints")  # the module (checks.hints is the function)

NAMES = sorted(checks.SOLUTIONS)
CHECK_MODULES = ["speech", "pruning", "lowrank", "deepthin", "quantization", "fp16", "pipeline", "deploy"]

#: one-line answers (or their decisive part) that a hint must not spell out, whitespace removed
KNOWN_ANSWERS = {
    "speaker_overlap": ["set(speakers_a)&set(speakers_b)", "np.intersect1d(speakers_a,speakers_b)",
                        ".intersection(set(speakers_b))"],
    "accuracy_from_confusion": ["np.trace(cm)/cm.sum()", "np.trace(cm)/np.sum(cm)", "cm.trace()/cm.sum()",
                                "np.diag(cm).sum()/cm.sum()"],
    "magnitude_prune": ["np.argsort(np.abs(W),axis=None)[:k]", "argsort(np.abs(W).ravel())[:k]",
                        "np.partition(np.abs(W)", "np.abs(W)<=np.sort(np.abs(W)"],
    "csr_bytes": ["nnz*(4+index_bytes(cols-1))", "(rows+1)*index_bytes(nnz)", "nnz*index_bytes(cols-1)",
                  "4*nnz+nnz*index_bytes("],
    "break_even_density": ["csr_bytes(shape,nnz+1)<=", "returnnnz/(rows*cols)", "//(4+index_bytes(cols-1))"],
    "truncated_svd": ["U[:,:k]*s[:k]", "U[:,:rank]*s[:rank]", "Vt[:k]", "Vt[:rank]", "np.diag(s[:k])",
                      "np.diag(s[:rank])"],
    "lowrank_bytes": ["4*(Q+R)*rank+16", "4*(Q+R)*k+16", "(Q+R)*rank*4", "4*Q*rank+4*rank*R"],
    "rank_for_budget": ["(max_bytes-16)//(4*(Q+R))", "(max_bytes-16)/(4*(Q+R))", "lowrank_bytes(shape,k)<=max_bytes"],
    "relayout": ["reshape(R,Q).T", "W_aux.reshape(-1)[:Q*R]", "W_aux.ravel()[:Q*R]", "W_aux.flatten()[:Q*R]",
                 "reshape(Q,R,order=", "[j*Q:(j+1)*Q]"],
    "n_alignments": ["n//math.gcd(n,Q)", "n//gcd(n,Q)", "min(R,n//", "len({(j*Q)%nforjinrange(R)})",
                     "len(set((j*Q)%nforjinrange(R)))"],
    "lower_bound": ["(4*(m+n)+16)/(4*Q*R)", "4*(m+n)+16", "math.ceil(Q*R/n)+n", "-(-Q*R//n)+n"],
    "best_frac_bits": ["key=lambda", "np.mean((W-quant.fixed_point(W,word_bits=word_bits,frac_bits=F))**2)",
                       "range(-8,25)[int(np.argmin("],
    "symmetric_quantize": ["np.clip(np.round(W/scale),-qmax,qmax)*scale",
                           "np.clip(np.rint(W/scale),-qmax,qmax)*scale", "qmax=2**(n_bits-1)-1"],
    "packed_bytes": ["ceil(n*n_bits/8)", "(n*n_bits+7)//8", "-(-n*n_bits//8)", "-(-(n*n_bits)//8)"],
    "float_spacing": ["2**(max(", "2.0**(max(", "ldexp(1.0,max(", "max(math.floor(math.log2(abs(x))),min_exponent)",
                      "frexp(abs(x))[1]-1"],
    "underflows": ["abs(x)<=2**-25", "abs(x)<=2.0**-25", "x!=0andabs(x)<="],
    "loss_scale_update": ["scale*backoff_factor,0,True", "scale*growth_factor,0,False", "good_steps>=growth_interval"],
    "stage_factors": ["b[i-1]/b[i]", "bytes[i-1]/bytes[i]", "stage_bytes[i-1]/stage_bytes[i]",
                      "stage_bytes[0]/stage_bytes[-1]", "bytes[0]/bytes[-1]", "before/afterforbefore,afterinzip"],
    "distillation_loss": ["alpha*T*T*kl+(1-alpha)*ce", "alpha*T**2*kl+(1-alpha)*ce",
                          "(np.exp(log_pt)*(log_pt-log_ps)).sum(axis=1)", "z-np.log(np.exp(z).sum(axis=1,keepdims=True))"],
    "export_int8": ["deploy.export_onnx(model,", "quantize_int8(fp32", "quantize_int8(fp32_path,path",
                    "path.with_name(path.stem"],
}


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _code_lines(fn) -> list[str]:
    """The non-trivial lines of ``fn``'s body (docstring and comments left out), whitespace removed."""
    src = textwrap.dedent(inspect.getsource(fn))
    node = ast.parse(src).body[0]
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]
    lines = src.splitlines()
    out = []
    for stmt in body:
        for line in lines[stmt.lineno - 1:stmt.end_lineno]:
            code = _norm(line.split("  #", 1)[0].split(" # ", 1)[0])
            if len(code) >= 12 and not code.startswith("#"):
                out.append(code)
    return out


def _called_library_functions(fn) -> list:
    """thinlab functions (outside thinlab.checks) that ``fn`` calls by ``module.name`` or ``name``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    found = []
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        f = call.func
        obj = None
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
            mod = fn.__globals__.get(f.value.id)
            if mod is None:
                try:
                    mod = importlib.import_module(f"thinlab.{f.value.id}")
                except ImportError:
                    continue
            obj = getattr(mod, f.attr, None)
        elif isinstance(f, ast.Name):
            obj = fn.__globals__.get(f.id)
        if inspect.isfunction(obj) and obj.__module__.startswith("thinlab.") and \
                not obj.__module__.startswith("thinlab.checks"):
            found.append(obj)
    return found


def _answer_texts(name: str) -> list[str]:
    """Normalised code that must not appear in a hint: the reference's lines, those of the library functions
    it calls, and the known one-line answers."""
    ref = checks.SOLUTIONS[name]
    lines = _code_lines(ref)
    for lib in _called_library_functions(ref):
        lines += _code_lines(lib)
    return sorted(set(lines) | {_norm(s) for s in KNOWN_ANSWERS[name]})


ANSWERS = {name: _answer_texts(name) for name in NAMES}


def _leaks(text: str) -> list[str]:
    """Every (exercise, answer) whose answer code shows in ``text`` (whitespace ignored)."""
    flat = _norm(text)
    return [f"{name}: {a!r}" for name in NAMES for a in ANSWERS[name] if a in flat]


def test_every_exercise_has_known_answers_listed():
    assert sorted(KNOWN_ANSWERS) == NAMES, "list a few one-line answers for each exercise in KNOWN_ANSWERS"


def test_the_answer_finder_sees_the_library_code_behind_a_reference():
    """A reference that only calls the library must still yield the library's code lines."""
    assert "returnflat.reshape(R,Q).T.copy()" in ANSWERS["relayout"]
    assert any("U[:,:k]*s[:k]" in line for line in ANSWERS["truncated_svd"])
    assert "returnfloat(np.trace(cm)/cm.sum())" in ANSWERS["accuracy_from_confusion"]
    assert _leaks("try W_aux.reshape(-1)[:Q * R].reshape(R, Q).T") != []   # the example is caught


@pytest.mark.parametrize("name", NAMES)
def test_three_nonempty_tiers(name):
    h = checks.hints(name)
    assert isinstance(h, checks.Hints) and h.exercise == name
    tiers = h.tiers()
    assert len(tiers) == 3 and all(isinstance(t, str) and len(t.strip()) >= 40 for t in tiers), tiers
    assert len(set(tiers)) == 3, "each tier says something new"
    assert "___" in h.shape, "the shape of the code is a skeleton with blanks for the student to fill"


@pytest.mark.parametrize("name", NAMES)
def test_no_tier_contains_an_answer(name):
    for tier, text in zip(hints_mod.TIERS, checks.hints(name).tiers()):
        assert not _leaks(text), f"hint {tier!r} of {name!r} holds answer code: {_leaks(text)}"


def test_hints_do_not_trip_the_release_leak_check():
    texts = {f"hints[{n}][{i}]": t for n in NAMES for i, t in enumerate(checks.hints(n).tiers())}
    assert solution_leaks(texts) == []


def test_unknown_exercise_raises_a_clear_key_error():
    with pytest.raises(KeyError, match=r"no hints for exercise 'nope'.*magnitude_prune"):
        checks.hints("nope")


@pytest.mark.parametrize("name", ["relayout", "magnitude_prune"])
def test_html_has_three_collapsed_tiers_and_text_lists_them(name):
    h = checks.hints(name)
    page = h._repr_html_()
    assert page.count("<details>") == 3 and page.count("</details>") == 3
    assert "<pre>" in page, "the skeleton keeps its line breaks"
    assert "<script" not in page and "&lt;" not in h.concept  # escaped, no markup injected
    text = str(h)
    assert all(f"Hint {i} (" in text for i in (1, 2, 3))


def _message_strings(module) -> list[str]:
    """Every string literal of a check module outside its ``*_reference`` functions and docstrings; the
    pieces of an f-string are joined with ``{}`` where a value goes."""
    tree = ast.parse(inspect.getsource(module))
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.Module)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                skip.add(id(body[0].value))
            if isinstance(node, ast.FunctionDef) and node.name.endswith("_reference"):
                skip.update(id(n) for n in ast.walk(node))
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.JoinedStr):
            out.append("".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values))
            skip.update(id(v) for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append(node.value)
    return out


@pytest.mark.parametrize("module", CHECK_MODULES)
def test_no_failure_message_text_in_the_checks_contains_an_answer(module):
    mod = importlib.import_module(f"thinlab.checks.{module}")
    strings = _message_strings(mod)
    assert len(strings) > 3
    # adjacent literals ("..." "...") are one string already; also join them all, for answers split over two
    leaks = [(s[:60], _leaks(s)) for s in strings if _leaks(s)] + [("all", _leaks(" ".join(strings)))]
    assert all(not found for _, found in leaks), leaks


def _wrong_answers():
    """(check, wrong answer) pairs from the lessons' check tests, plus generic wrong answers for every exercise."""
    import test_checks_deepthin
    import test_checks_fp16
    import test_checks_lowrank
    import test_checks_pruning
    import test_checks_quantization

    pairs = [(c, w) for mod in (test_checks_pruning, test_checks_lowrank, test_checks_deepthin,
                                test_checks_quantization) for c, w, *_ in mod.WRONG.values()]
    pairs += [(c, w) for c, w, _ in test_checks_fp16.WRONG]
    generic = [lambda *a, **k: 0, lambda *a, **k: 0.5, lambda *a, **k: None, lambda *a, **k: (1.0, 1.0)]
    for name in NAMES:
        if name != "export_int8":         # its check trains a model; its messages are covered statically
            pairs += [(getattr(checks, f"check_{name}"), g) for g in generic]
    pairs.append((checks.check_magnitude_prune, lambda W, s: np.where(np.abs(W) < s, 0.0, W)))
    pairs.append((checks.check_relayout, lambda W_aux, Q, R: np.zeros((Q, R))))
    return pairs


def test_no_failure_message_contains_an_answer():
    seen = 0
    for check, wrong in _wrong_answers():
        try:
            check(wrong)
        except AssertionError as exc:
            message = str(exc)
        except Exception:                 # a wrong answer the check cannot even call: nothing to read
            continue
        else:
            continue
        seen += 1
        assert "Hint:" in message or "not written yet" in message, message
        assert not _leaks(message), f"{check.__name__}: {_leaks(message)} in {message}"
    assert seen >= 60, f"only {seen} failure messages were read"
