# pytest under mpirun (tests/CMakeLists.txt runs this suite at 1-4 ranks):
# every rank runs every test, and the tests' rankflow calls are collective.
# One Runtime per process, made once for the session.
import os

import pytest

import rankflow


@pytest.fixture(scope="session")
def rt():
    # Not sys.argv: those are pytest's flags.
    return rankflow.Runtime(["pytest"])


@pytest.fixture
def fresh(rt, request):
    """A fresh experiment file name for this test and rank count (same on every rank)."""
    name = f"py_{request.node.name}_np{rt.size}.h5"
    if rt.is_scheduler:
        for p in (name,):
            if os.path.exists(p):
                os.remove(p)
        os.system(f"rm -rf '{name}.d'")
    # Every rank waits until rank 0 has removed the old file.
    rt.parallel_map(lambda i: i, rankflow.range(0, rt.size), results_on_all_ranks=True)
    return name
