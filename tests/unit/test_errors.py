"""Error text: one line per exception chain, intent first."""

from runtime.errors import PyrunError, describe_error


def chained(outer: str, inner: Exception) -> PyrunError:
    try:
        try:
            raise inner
        except Exception as err:
            raise PyrunError(outer) from err
    except PyrunError as err:
        return err


def test_describe_error_joins_chain():
    err = chained("run httpd", OSError(22, "mount overlay: invalid argument"))
    assert describe_error(err) == "run httpd: [Errno 22] mount overlay: invalid argument"


def test_describe_error_skips_repeated_cause():
    err = chained("pull busybox: connection refused", ValueError("connection refused"))
    assert describe_error(err) == "pull busybox: connection refused"


def test_describe_error_names_empty_exception():
    assert describe_error(KeyError()) == "KeyError"
