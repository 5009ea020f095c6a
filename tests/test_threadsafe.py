"""Constant parameters edited from several threads: the dashboard's replacement for Param's and HoloViews' toggles."""

import sys
import threading

import holoviews as hv
import param
import pytest

from dashboard.threadsafe import disable_constant, edit_constant, install


class Thing(param.Parameterized):
    fixed = param.Number(1, constant=True)
    free = param.Number(2)


@pytest.mark.parametrize("toggle", [edit_constant, disable_constant])
def test_two_overlapping_holders_each_may_assign_until_they_leave(toggle):
    """The interleaving that broke a refinement's redraw: one holder leaves while another is still assigning."""
    a, b = Thing(), Thing()
    first, second = toggle(a), toggle(b)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    b.fixed = 5  # HoloViews' own toggle had put `constant` back here: TypeError
    second.__exit__(None, None, None)
    assert b.fixed == 5
    with pytest.raises(TypeError, match="Constant parameter 'fixed'"):
        a.fixed = 6  # (b's own copy of the parameter, made by the assignment, is the next test's)
    assert Thing.param.objects(instance=False)["fixed"].constant
    assert not Thing.param.objects(instance=False)["free"].constant


def test_a_parameter_copied_inside_the_block_is_constant_again_after_it():
    """Assigning inside the block makes the instance's own copy of the parameter, which took the cleared flag:
    Param's ``edit_constant`` makes it constant again."""
    thing = Thing()
    with edit_constant(thing):
        thing.fixed = 3
        assert "fixed" in thing._param__private.params
    with pytest.raises(TypeError):
        thing.fixed = 4
    assert thing.fixed == 3


@pytest.mark.parametrize("toggle", [edit_constant, disable_constant])
def test_the_flag_comes_back_when_the_body_raises(toggle):
    thing = Thing()
    with pytest.raises(ValueError), toggle(thing):
        raise ValueError("body")
    with pytest.raises(TypeError):
        thing.fixed = 4


def test_dynamicmaps_cloned_on_several_threads_at_once():
    """What Panel's callback threads do when each redraws a plot with ``.opts()`` (a clone of a DynamicMap)."""
    install()
    errors, interval = [], sys.getswitchinterval()

    def clone_many():
        dmap = hv.DynamicMap(lambda: hv.Points([]))
        try:
            for _ in range(60):
                dmap.clone().opts(padding=0.1)  # `.opts()` clones again, and assigns the callbacks of both
        except Exception as error:  # noqa: BLE001 - collected and reported by the test
            errors.append(repr(error))

    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can, to interleave the toggles
    try:
        threads = [threading.Thread(target=clone_many) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert hv.DynamicMap.param.objects(instance=False)["callback"].constant
