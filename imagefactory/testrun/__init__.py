"""The test stage: run the OpenZFS test suite in clones of the ztest goldens and judge it.

The host-side half (parsing the suite's console, history, matrix, JUnit, exit status) needs no
VM, so it can be used on any zfs-tests.sh log, wherever it was produced.
"""
