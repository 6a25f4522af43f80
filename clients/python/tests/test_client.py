"""The Client, views, flags, AsyncResult and errors against the real cluster."""

import json
import re
import shutil
import time

import pytest

import wasmpar
from conftest import ENGINES, guests_dir

R = (range(10), range(10), range(10))


# -- finding the cluster ------------------------------------------------------------------------
def test_connection_file_argument_env_and_home(connection_file, monkeypatch, tmp_path):
    with wasmpar.Client(url_file=connection_file) as c:
        assert c.ids == list(range(ENGINES))
    monkeypatch.setenv("WASMPAR_CONNECTION_FILE", str(connection_file))
    with wasmpar.Client() as c:
        assert len(c.ids) == ENGINES
    monkeypatch.delenv("WASMPAR_CONNECTION_FILE")
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".wasmpar").mkdir()
    shutil.copy(connection_file, tmp_path / ".wasmpar" / "cluster.json")
    with wasmpar.Client() as c:
        assert c.connection_info["file"] == str(tmp_path / ".wasmpar" / "cluster.json")
        assert len(c.ids) == ENGINES


def test_no_cluster_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("WASMPAR_CONNECTION_FILE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(wasmpar.ClusterNotFound, match=r"\.wasmpar/cluster\.json does not exist"):
        wasmpar.Client()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(wasmpar.WasmparError, match="is not JSON"):
        wasmpar.Client(bad)
    bad.write_text('{"url": "http://127.0.0.1:1"}')
    with pytest.raises(wasmpar.WasmparError, match='lacks "url" and "token"'):
        wasmpar.Client(bad)


def test_unreachable_server_and_wrong_token(connection_file, tmp_path):
    with wasmpar.Client(url="http://127.0.0.1:1", token="x") as c:
        with pytest.raises(wasmpar.ClusterUnreachable, match="cannot reach the wasmpar server at http://127.0.0.1:1"):
            c.ids
    with wasmpar.Client(connection_file, token="wrong") as c:
        with pytest.raises(wasmpar.APIError) as e:
            c.ids
        assert e.value.status == 401


def test_one_keep_alive_connection(connection_file, seed):
    with wasmpar.Client(connection_file) as c:
        for _ in range(20):
            c.ids
            c[0].apply_sync(seed.identity, 1)
        c[:].push({"k": "v"}, block=True)
        assert c[:].pull("k").get(10) == ["v"] * ENGINES  # from the worker thread
        assert c._conn.opened == 1, "every request reused one connection"


def test_a_connection_closed_under_the_client_is_replaced(connection_file, seed):
    import socket

    with wasmpar.Client(connection_file) as c:
        assert c[0].apply_sync(seed.identity, 1) == 1
        (kept,) = c._conn._idle
        kept.sock.shutdown(socket.SHUT_RDWR)  # as a server closing an idle keep-alive connection
        assert c[0].apply_sync(seed.identity, 2) == 2
        assert c._conn.opened == 2


def test_threads_share_a_client(connection_file, seed):
    from concurrent.futures import ThreadPoolExecutor

    with wasmpar.Client(connection_file) as c:
        with ThreadPoolExecutor(6) as pool:
            got = list(pool.map(lambda i: c[i % ENGINES].apply_sync(seed.identity, i), range(300)))
        assert got == list(range(300))
        assert 1 <= c._conn.opened <= 6, "one connection per thread at most"


# -- views and targets ---------------------------------------------------------------------------
def test_target_forms(rc, seed):
    assert rc[:].apply_sync(seed.identity, 7) == [7] * ENGINES
    assert rc[2].apply_sync(seed.identity, 7) == 7, "a single engine gives a single result"
    assert rc[-1].apply_async(seed.identity, 1).wait(10)
    ar = rc[-1].apply_async(seed.identity, 1)
    ar.wait(10)
    assert ar.engine_id == ENGINES - 1
    ar = rc[[1, 3]].apply_async(seed.identity, 1)
    ar.get(10)
    assert ar.engine_id == [1, 3]
    ar = rc[1::3].apply_async(seed.identity, 1)
    ar.get(10)
    assert ar.engine_id == list(range(ENGINES))[1::3]


def test_bad_targets(rc, seed):
    with pytest.raises(TypeError):
        rc[1.5]
    with pytest.raises(ValueError, match="no engine"):
        rc[[]]
    with pytest.raises(TypeError):
        rc[True]
    with pytest.raises(wasmpar.APIError) as e:
        rc[99].apply_sync(seed.identity, 1)
    assert e.value.status == 404 and "engine" in e.value.message
    with pytest.raises(ValueError, match="spans every engine"):
        rc.load_balanced_view(targets=[1])


def test_functions_are_components_not_python(dv, seed):
    with pytest.raises(TypeError, match="not Python callables"):
        dv.map_sync(lambda x, y, z: x + y + z, *R)
    with pytest.raises(ValueError, match="'component/function'"):
        dv.map_sync("add3", *R)
    with pytest.raises(wasmpar.APIError) as e:
        dv.map_sync("seed/nope", *R)
    assert e.value.status == 404 and "nope" in e.value.message
    with pytest.raises(wasmpar.APIError) as e:
        dv.apply_sync(seed.add3, "x", 1, 2)
    assert e.value.status in (400, 422)
    with pytest.raises(TypeError, match="binds a component function"):

        @dv.parallel(block=True)
        def f(x):
            return x


def test_component_handles(rc, seed):
    assert {"add3", "sum-chunk", "greet"} <= set(seed.exports)
    assert seed.sum_chunk == wasmpar.Function("seed", "sum-chunk")
    assert str(seed.add3) == "seed/add3"
    assert "x: s64" in repr(seed.add3)
    with pytest.raises(AttributeError, match="exports no function 'nope'"):
        seed.nope
    assert rc.component("seed").digest == seed.digest
    assert "seed" in rc.components()
    assert "sum_chunk" in dir(seed)


def test_upload_errors(rc):
    with pytest.raises(ValueError, match="name="):
        rc.upload(b"\0asm")
    with pytest.raises(FileNotFoundError, match="no component at"):
        rc.upload(guests_dir() / "missing.wasm")
    with pytest.raises(wasmpar.APIError) as e:
        rc.upload(b"not wasm at all", name="junk")
    assert e.value.status == 400
    with pytest.raises(wasmpar.APIError) as e:
        rc.install("no-such-library")
    assert e.value.status == 404


def test_upload_bytes_and_remove(rc):
    data = (guests_dir() / "counter.wasm").read_bytes()
    c = rc.upload(data, name="counter-copy")
    assert c.name == "counter-copy"
    rc.remove_component(c)
    with pytest.raises(wasmpar.APIError) as e:
        rc.component("counter-copy")
    assert e.value.status == 404


# -- errors from engines ----------------------------------------------------------------------
def test_remote_error_from_one_engine(rc, seed):
    with pytest.raises(wasmpar.RemoteError) as e:
        rc[1].apply_sync(seed.fail, "boom")
    assert not isinstance(e.value, wasmpar.CompositeError)
    assert e.value.engine_id == 1 and "boom" in e.value.evalue
    assert str(e.value).startswith("[1:seed/fail] RemoteError: boom")


def test_composite_error_from_every_engine(dv, seed):
    with pytest.raises(wasmpar.CompositeError) as e:
        dv.apply_sync(seed.fail, "boom")
    err = e.value
    assert sorted(x.engine_id for x in err.elist) == list(range(ENGINES))
    assert all("boom" in x.evalue for x in err.elist)
    assert str(err).splitlines()[0] == "one or more exceptions raised in: seed/fail"
    with pytest.raises(wasmpar.RemoteError, match="boom"):
        err.raise_exception(0)
    ar = dv.apply_async(seed.fail, "boom")
    ar.wait(30)
    assert ar.successful() is False
    assert isinstance(ar.exception(), wasmpar.CompositeError)


def test_balanced_error_and_retries(rc, seed):
    lv = rc.load_balanced_view()
    with pytest.raises(wasmpar.RemoteError, match="once"):
        lv.apply_sync(seed.fail, "once")
    before = sum(e["completed"] for e in rc.engines())
    lv.set_flags(retries=2)
    with pytest.raises(wasmpar.RemoteError, match="thrice"):
        lv.apply_sync(seed.fail, "thrice")
    ar = lv.apply_async(seed.fail, "thrice")
    with pytest.raises(wasmpar.RemoteError):
        ar.get(30)
    time.sleep(0.2)
    assert sum(e["completed"] for e in rc.engines()) - before == 6, "1 call + 2 retries, twice"


def test_flags(rc, seed):
    lv = rc.load_balanced_view()
    lv.set_flags(chunksize=7, ordered=False)
    out = lv.map_sync(seed.identity, range(100))
    assert sorted(out) == list(range(100))
    assert lv.map_sync(seed.identity, range(20), chunksize=3, ordered=True) == list(range(20))
    with pytest.raises(ValueError, match="chunksize"):
        lv.set_flags(chunksize=0)
    with pytest.raises(ValueError, match="has no flag 'chunksize'"):
        rc[:].set_flags(chunksize=2)
    with pytest.raises(ValueError, match="has no flag 'bogus'"):
        lv.set_flags(bogus=1)
    with pytest.raises(TypeError, match="unexpected argument"):
        rc[:].map_sync(seed.identity, range(3), chunksize=2)
    dv = rc[:]
    with dv.temp_flags(block=True):
        assert dv.map(seed.identity, range(3)) == [0, 1, 2]
    assert dv.block is False


def test_deadline_on_the_engines(rc, seed):
    lv = rc.load_balanced_view()
    lv.set_flags(timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(wasmpar.TimeoutError):
        lv.apply_sync(seed.spin)
    assert time.monotonic() - t0 < 10


# -- AsyncResult ----------------------------------------------------------------------------------
def test_async_result_state(rc, seed):
    lv = rc.load_balanced_view()
    ar = lv.map_async(seed.identity, range(2000))
    assert len(ar) == 2000
    assert ar.get(60) == list(range(2000))
    assert ar.ready() and ar.successful()
    assert ar.progress == 2000
    assert ar.elapsed > 0 and ar.wall_time is not None and ar.wall_time > 0
    e1 = ar.elapsed
    time.sleep(0.05)
    assert ar.elapsed == e1, "elapsed stops when the task is seen finished"
    assert list(ar) == list(range(2000)) and ar[5] == 5


def test_get_timeout_cancel_and_abort(rc, seed):
    ar = rc[ENGINES - 1].apply_async(seed.spin)
    with pytest.raises(wasmpar.TimeoutError, match="not ready"):
        ar.get(0.2)
    assert not ar.ready() and ar.id in rc.outstanding
    assert ar.cancel() is True
    with pytest.raises(wasmpar.TaskAborted):
        ar.get(5)
    assert ar.id not in rc.outstanding
    a = rc[ENGINES - 1].apply_async(seed.spin)
    b = rc[ENGINES - 2].apply_async(seed.spin)
    rc.abort()
    assert a.wait(10) and b.wait(10)
    assert a.cancelled() and b.cancelled()
    assert not rc.outstanding
    # The engines are free again.
    assert rc[ENGINES - 1].apply_sync(seed.identity, 4) == 4


def test_wait_interactive_draws_a_bar(rc, seed, capsys):
    lv = rc.load_balanced_view()
    ar = lv.map_async(seed.identity, range(3000))
    assert ar.wait_interactive(interval=0.01, widget=False) is True
    err = capsys.readouterr().err
    assert "identity" in err and "/3000" in err
    assert ar.get() == list(range(3000))


def test_non_blocking_namespace_operations(rc, seed):
    dv = rc[:]
    ar = dv.push({"q": 11})
    assert isinstance(ar, wasmpar.AsyncResult)
    assert ar.get(10) == [None] * ENGINES
    assert dv.pull("q").get(10) == [11] * ENGINES
    dv.scatter("qs", list(range(16))).get(10)
    assert list(dv.gather("qs").get(10)) == list(range(16))


def test_namespace_errors(rc):
    dv = rc[:]
    with pytest.raises(wasmpar.APIError) as e:
        dv["never-pushed"]
    assert e.value.status == 404 and "never-pushed" in e.value.message
    with pytest.raises(TypeError, match="dict"):
        dv.push([1, 2])
    with pytest.raises(TypeError, match="cannot be sent"):
        dv.push({"o": object()})
    with pytest.raises(TypeError, match="not a sequence"):
        dv.map_sync("seed/identity", "abc")


def test_get_result_by_id(rc, seed):
    ar = rc[:].map_async(seed.add3, *R)
    ar.wait(10)
    again = rc.get_result(ar.id)
    assert again.get(10) == ar.get()
    assert re.match(r"<AsyncMapResult: add3:finished>", repr(again))


def test_json_results_by_default(rc, seed):
    out = rc[:].map_sync(seed.identity, [1, 2, 3])
    assert type(out) is list and json.dumps(out) == "[1, 2, 3]"


def test_get_dict_wait_and_shutdown(tmp_path, seed):
    from conftest import start_cluster, stop_cluster

    ar = None
    conn = tmp_path / "own.json"
    start_cluster(conn, 2)
    try:
        with wasmpar.Client(conn) as c:
            s = c.upload(guests_dir() / "seed.wasm")
            ar = c[:].apply_async(s.identity, 6)
            lb = c.load_balanced_view().apply_async(s.identity, 6)
            assert c.wait(timeout=30) is True and not c.outstanding
            assert ar.get_dict() == {0: 6, 1: 6}
            with pytest.raises(TypeError, match="direct view"):
                lb.get_dict()
            spinning = c[1].apply_async(s.spin)
            assert c.wait([spinning], timeout=0.3) is False
            spinning.cancel()
            info = json.loads(conn.read_text())
            c.shutdown()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with wasmpar.Client(url=info["url"], token=info["token"]) as again:
                    again.ids
            except wasmpar.ClusterUnreachable:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the cluster still answers after shutdown()")
    finally:
        stop_cluster(conn)
