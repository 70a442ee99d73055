"""qgemm's only runtime dependency is NumPy: the PyTorch bridge is opt-in."""

import os
import subprocess
import sys


def run_python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_import_qgemm_does_not_import_torch():
    r = run_python("import sys, qgemm, qgemm.nn; qgemm.cpu_info(); "
                   "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_qgemm_torch_without_torch_says_what_to_install():
    # sys.modules[name] = None makes `import name` fail as if it were not installed.
    r = run_python("import sys; sys.modules['torch'] = None\n"
                   "try:\n    import qgemm.torch\nexcept ImportError as e:\n    print(e)")
    assert r.returncode == 0, r.stderr
    assert 'pip install "qgemm[torch]"' in r.stdout
