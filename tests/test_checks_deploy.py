"""Lesson 07's exercise check passes the reference answer and fails wrong int8 exports with a "Hint:"."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from _checks_helpers import assert_fails_with_hint, assert_reference_passes, assert_unwritten_says_so

from thinlab import checks, deploy


def test_reference_passes():
    assert_reference_passes("export_int8")


def test_static_with_real_calibration_passes_too():
    def static(model, path, calibration):
        fp32 = Path(path).with_name("fp32.onnx")
        deploy.export_onnx(model, fp32, calibration)
        deploy.quantize_int8(fp32, path, mode="static", calibration=calibration)
        return path

    assert checks.check_export_int8(static).startswith("✓ export_int8 is right")


def test_float32_export_fails():
    def fp32_only(model, path, calibration):
        deploy.export_onnx(model, path, calibration)
        return path

    assert_fails_with_hint(checks.check_export_int8, fp32_only, what="float32", hint="quantize_int8")


def test_calibration_on_zeros_fails():
    def zeros(model, path, calibration):
        fp32 = Path(path).with_name("fp32.onnx")
        deploy.export_onnx(model, fp32, calibration)
        deploy.quantize_int8(fp32, path, mode="static", calibration=np.zeros_like(calibration))
        return path

    assert_fails_with_hint(checks.check_export_int8, zeros, what="differ by", hint="calibrate on the real training")


def test_no_file_and_garbage_file_fail():
    assert_fails_with_hint(checks.check_export_int8, lambda model, path, calibration: path, what="no file",
                           hint="write the int8 model")

    def garbage(model, path, calibration):
        Path(path).write_bytes(b"\x00not onnx" * 50)
        return str(path)

    assert_fails_with_hint(checks.check_export_int8, garbage, what="not a model onnxruntime can run",
                           hint="quantize_int8")


def test_unwritten_exercise_says_so():
    assert_unwritten_says_so("export_int8")
