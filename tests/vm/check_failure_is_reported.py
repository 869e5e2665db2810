"""A test that always fails, to check that a failure in the guest fails the run.

    make vm-test VM_TESTS=tests/vm/check_failure_is_reported.py

must print the failure and exit non-zero. pytest does not collect this file
on its own (its name does not start with test_), so `make test` never runs it.
"""

import pytest


@pytest.mark.vmsmoke
def test_deliberate_failure():
    pytest.fail("deliberate failure: `make vm-test` must exit non-zero after this")
