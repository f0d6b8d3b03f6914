from _helpers import raises
import edge


def test_version_is_a_string():
    assert isinstance(edge.VERSION, str)


def test_raises_helper():
    e = raises(ValueError, int, "x")
    assert isinstance(e, ValueError)
