"""A PEP 517 build backend for the one-module package beside it.

pip installs rankflow_reader.py offline with it: a wheel is a zip of the module
and a .dist-info directory (METADATA, WHEEL, RECORD), which the standard
library writes as well as setuptools would, and pip needs to fetch nothing.
"""
import base64
import hashlib
import os
import zipfile

NAME = "rankflow_reader"
DIST = "rankflow_reader"
VERSION = "2.0.0"
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

METADATA = f"""Metadata-Version: 2.1
Name: rankflow-reader
Version: {VERSION}
Summary: Read rankflow experiment files (runs, the run index, sweeps, series) with h5py
Requires-Python: >=3.9
Requires-Dist: numpy
"""

WHEEL = """Wheel-Version: 1.0
Generator: rankflow_build
Root-Is-Purelib: true
Tag: py3-none-any
"""


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _write_wheel(wheel_directory, module_files):
    info = f"{DIST}-{VERSION}.dist-info"
    wheel_name = f"{DIST}-{VERSION}-py3-none-any.whl"
    files = dict(module_files)
    files[f"{info}/METADATA"] = METADATA.encode()
    files[f"{info}/WHEEL"] = WHEEL.encode()
    record = [_record_line(n, d) for n, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel_name), "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in files.items():
            z.writestr(n, d)
    return wheel_name


def _module():
    with open(os.path.join(HERE, f"{NAME}.py"), "rb") as f:
        return {f"{NAME}.py": f.read()}


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, _module())


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # A .pth file that puts this directory on sys.path: edits take effect at once.
    return _write_wheel(wheel_directory, {f"{NAME}.pth": (HERE + "\n").encode()})


def build_sdist(sdist_directory, config_settings=None):
    import tarfile

    base = f"{DIST}-{VERSION}"
    name = f"{base}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as t:
        for rel in ("pyproject.toml", f"{NAME}.py", "_build/rankflow_build.py"):
            t.add(os.path.join(HERE, rel), arcname=f"{base}/{rel}")
    return name
