"""Framed task bodies (API.md, "Framed bodies"): big arrays out as raw buffers, array results back the same way."""

import numpy as np
import pytest

import wasmpar
from wasmpar import arrays
from wasmpar.connection import FRAMES, Response, decode_task
from wasmpar.errors import APIError

from conftest import ENGINES
from test_tutorial import serial_numpy_mandel

JSON = "application/json"


@pytest.fixture()
def json_only(rc, monkeypatch):
    """The client as it was before frames: every task request and answer JSON (base64 arrays)."""
    monkeypatch.setattr(rc._conn, "frames", False)


def grid():
    x = np.arange(-2, 1, 0.01)
    y = np.arange(-1, 1, 0.01)
    return np.meshgrid(x, y)


def last_task_request(wire):
    i = max(i for i, r in enumerate(wire.requests) if r[1].startswith("/v1/tasks"))
    return wire.requests[i], wire.buffers[i], wire.accepts[i]


def test_framed_mandelbrot_equals_json_path_and_numpy(rc, mandelbrot, wire, monkeypatch):
    X, Y = grid()
    chunked = rc[:].parallel(mandelbrot.mandel_chunk, block=True)
    im = chunked(X.ravel(), Y.ravel(), max_iters=80)
    (method, path, ctype, length, doc), bufs, accept = last_task_request(wire)
    assert (method, path, ctype) == ("POST", "/v1/tasks", FRAMES)
    assert doc["sequences"] == [{"dtype": "float64", "shape": [X.size], "buffer": 0},
                                {"dtype": "float64", "shape": [Y.size], "buffer": 1}]
    assert bufs == [X.nbytes, Y.nbytes] and length < X.nbytes + Y.nbytes + 1000, "raw bytes, not base64"
    assert FRAMES in accept
    assert wire.answers[-1][2:4] == (200, FRAMES), "the answer came framed"
    assert isinstance(im, np.ndarray) and im.dtype == np.uint32 and im.shape == (X.size,)

    monkeypatch.setattr(rc._conn, "frames", False)
    im_json = chunked(X.ravel(), Y.ravel(), max_iters=80)
    (_, _, ctype, _, doc), bufs, accept = last_task_request(wire)
    assert ctype == JSON and "data" in doc["sequences"][0] and bufs == [] and accept == JSON
    assert wire.answers[-1][3] == JSON
    assert im_json.dtype == np.uint32
    assert np.array_equal(im, im_json)
    assert np.array_equal(im.reshape(X.shape), serial_numpy_mandel(X, Y))


def test_framed_map_of_one_call_per_point(rc, mandelbrot, wire):
    xs = np.linspace(-2, 1, 3000)
    ys = np.linspace(-1, 1, 3000)
    out = rc[:].parallel(mandelbrot.mandel, block=True).map(xs, ys, max_iters=40)
    assert wire.requests[-1][2] == FRAMES and wire.buffers[-1] == [xs.nbytes, ys.nbytes]
    assert np.array_equal(out, serial_numpy_mandel(xs, ys, 40))
    lv = rc.load_balanced_view()
    out = lv.map_sync(mandelbrot.mandel, xs, ys, kwargs={"max_iters": 40}, chunksize=500)
    assert wire.requests[-1][2] == FRAMES
    assert np.array_equal(out, serial_numpy_mandel(xs, ys, 40))


def test_apply_with_a_big_array_arg_and_kwarg(rc, seed, wire):
    dv = rc[:]
    big = np.arange(200_000, dtype=np.int64) * 3 - 7
    out = dv.apply_sync(seed.echo_chunk, big)
    assert wire.requests[-1][2] == FRAMES and wire.buffers[-1] == [big.nbytes]
    assert wire.requests[-1][4]["args"] == [{"dtype": "int64", "shape": [200_000], "buffer": 0}]
    assert wire.answers[-1][3] == FRAMES
    assert len(out) == ENGINES and all(isinstance(a, np.ndarray) and np.array_equal(a, big) for a in out)
    assert out[0].base is not None and not out[0].flags.owndata, "a view over the answer's bytes"
    assert out[0].flags.writeable, "over the byte array the answer was read into"
    small = rc[0].apply_sync(seed.echo_chunk, np.arange(3))
    assert wire.answers[-1][3] == FRAMES and small.flags.writeable, "small framed answers too"
    small[0] = 5  # its own memory: nothing else changes
    assert small.tolist() == [5, 1, 2]

    out = rc[2].apply_sync(seed.echo_chunk, xs=big)
    assert wire.requests[-1][4]["kwargs"] == {"xs": {"dtype": "int64", "shape": [200_000], "buffer": 0}}
    assert np.array_equal(out, big)

    # A big arg and a small one in one task: one buffer, the small one base64 in the document.
    small = np.arange(10, dtype=np.int64)
    out = rc[1].apply_sync(seed.add_chunks, big, ys=small)
    doc = wire.requests[-1][4]
    assert wire.buffers[-1] == [big.nbytes] and doc["args"][0]["buffer"] == 0 and "data" in doc["kwargs"]["ys"]
    assert out.tolist() == (big[:10] + small).tolist()

    floats = np.random.random(50_000)
    assert dv.apply_sync(seed.sum_array, floats) == pytest.approx([floats.sum()] * ENGINES)


def test_an_answer_of_several_buffers(rc, seed, wire):
    """Each engine's own array comes back as its own buffer, in engine order."""
    dv = rc[:]
    whole = np.arange(ENGINES * 1000, dtype=np.int64) * 7
    dv.scatter("part", whole, block=True)
    with dv.temp_flags(result_encoding="array"):
        out = dv.apply_sync(seed.echo_chunk, {"$ref": "part"})
    assert wire.answers[-1][3] == FRAMES
    assert [a.tolist() for a in out] == [c.tolist() for c in np.split(whole, ENGINES)]
    assert np.array_equal(np.concatenate(out), whole)


def test_awkward_big_arrays_go_framed(rc, seed, wire):
    """Strided, big-endian, 2-D and int32-for-f64 arrays: made contiguous little-endian before framing."""
    e0 = rc[0]
    strided = np.arange(40_000, dtype=np.int64)[::2]
    assert np.array_equal(e0.apply_sync(seed.echo_chunk, strided), strided)
    assert wire.buffers[-1] == [strided.nbytes]
    big_endian = np.arange(10_000, dtype=">i8")
    assert e0.apply_sync(seed.echo_chunk, big_endian).tolist() == list(range(10_000))
    as_f64 = np.arange(10_000, dtype=np.int32)
    assert e0.apply_sync(seed.sum_array, as_f64) == float(as_f64.sum())
    assert wire.requests[-1][4]["args"][0]["dtype"] == "int32"
    empty = np.zeros(0, dtype=np.int64)
    assert e0.apply_sync(seed.echo_chunk, empty).tolist() == []


def test_nonblocking_result_is_fetched_framed(rc, seed, mandelbrot, wire):
    big = np.arange(100_000, dtype=np.int64)
    ar = rc[:].apply_async(seed.echo_chunk, big)
    assert wire.requests[-1][2] == FRAMES
    out = ar.get(timeout=30)
    gets = [a for a in wire.answers if a[0] == "GET" and a[1] == f"/v1/tasks/{ar.id}"]
    posted = wire.answers[-1] if not gets else None
    assert gets or posted, "fetched by GET (or finished already in the 202)"
    assert all(a[3] == FRAMES for a in gets), gets
    assert wire.accepts[-1] is not None and FRAMES in wire.accepts[-1]
    assert len(out) == ENGINES and all(np.array_equal(a, big) for a in out)

    X, Y = grid()
    ar = rc[:].parallel(mandelbrot.mandel_chunk, block=False)(X.ravel(), Y.ravel(), max_iters=80)
    im = ar.get(timeout=30)
    assert np.array_equal(im.reshape(X.shape), serial_numpy_mandel(X, Y))
    # Fetched again by id, as another client would: framed too.
    again = rc.get_result(ar.id).get(timeout=30)
    assert wire.answers[-1][3] == FRAMES
    assert np.array_equal(again, im)


def test_a_slow_task_is_polled_framed(rc, mandelbrot, wire):
    """Still running at the 202, so the answer comes through GET ?wait=, framed."""
    X, Y = grid()
    ar = rc[:].parallel(mandelbrot.mandel_chunk, block=False)(X.ravel(), Y.ravel(), max_iters=1000)
    first = wire.answers[-1]
    im = ar.get(timeout=60)
    gets = [a for a in wire.answers if a[0] == "GET" and a[1] == f"/v1/tasks/{ar.id}"]
    assert first[2] == 202 and gets, "the task was fetched by GET"
    assert all(a[3] == FRAMES for a in gets), gets
    assert np.array_equal(im.reshape(X.shape), serial_numpy_mandel(X, Y, 1000))


def test_small_arrays_stay_json(rc, seed, wire):
    e0 = rc[0]
    under = np.arange(arrays.FRAME_MIN // 8 - 1, dtype=np.int64)
    assert np.array_equal(e0.apply_sync(seed.echo_chunk, under), under)
    (_, _, ctype, _, doc), bufs, _ = last_task_request(wire)
    assert ctype == JSON and "data" in doc["args"][0] and bufs == []
    at = np.arange(arrays.FRAME_MIN // 8, dtype=np.int64)
    assert np.array_equal(e0.apply_sync(seed.echo_chunk, at), at)
    assert wire.requests[-1][2] == FRAMES, f"{arrays.FRAME_MIN} bytes and up go framed"
    # Tiny arrays and plain lists.
    assert e0.apply_sync(seed.echo_chunk, np.array([1, 2, 3])).tolist() == [1, 2, 3]
    assert e0.apply_sync(seed.echo_chunk, [4, 5]) == [4, 5]
    assert wire.requests[-1][2] == JSON and wire.accepts[-1] == JSON, "no arrays: JSON both ways"
    assert rc[:].map_sync(seed.add3, range(5), range(5), range(5)) == [0, 3, 6, 9, 12]


def test_result_encoding_json_is_lists_without_frames(rc, seed, wire):
    dv = rc[0]
    big = np.arange(10_000, dtype=np.int64)
    with dv.temp_flags(result_encoding="json"):
        out = dv.apply_sync(seed.echo_chunk, big)
    assert wire.requests[-1][2] == FRAMES, "the request is framed all the same"
    assert wire.accepts[-1] == JSON and wire.answers[-1][3] == JSON
    assert type(out) is list and out == big.tolist()


@pytest.mark.parametrize(
    "function, value",
    [
        ("echo_chunk", np.linspace(0.5, 9.5, 10_000)),  # floats for list<s64>
        # An array for s64: the server words it differently for a base64 form ("got an object with
        # keys data, dtype, shape") and a buffer ("got an array of 1 dimensions"); same class and kind.
        ("identity", np.arange(10_000)),
        ("echo_chunk", np.arange(10_000, dtype=np.uint64) + np.uint64(2**63)),  # out of s64's range
    ],
)
def test_framed_errors_match_the_json_path(rc, seed, monkeypatch, wire, function, value):
    f = getattr(seed, function)
    with pytest.raises(APIError) as framed:
        rc[:].apply_sync(f, value)
    assert wire.requests[-1][2] == FRAMES
    monkeypatch.setattr(rc._conn, "frames", False)
    with pytest.raises(APIError) as plain:
        rc[:].apply_sync(f, value)
    assert wire.requests[-1][2] == JSON
    assert type(framed.value) is type(plain.value)
    assert (framed.value.status, framed.value.kind) == (plain.value.status, plain.value.kind) == (422, "TypeError")
    if function == "identity":
        for e in (framed.value, plain.value):
            assert e.message.startswith("argument `x`: expected s64, got ") and "(in identity:" in e.message
        assert "an array of 1 dimensions (shape [10000])" in framed.value.message
    else:
        assert framed.value.message == plain.value.message


def test_framed_body_the_server_refuses_is_a_clear_error(rc, seed):
    """A buffer nobody names is a 4xx answered as JSON, mapped to APIError like any other."""
    conn = rc._conn
    spec = {"op": "apply", "component": "seed", "function": "identity", "args": [1], "targets": 0, "block": True}
    with pytest.raises(APIError) as e:
        conn.task("POST", "/v1/tasks", spec=spec, buffers=[memoryview(b"12345678")], frames=True)
    assert 400 <= e.value.status < 500 and "buffer" in e.value.message


def test_json_answers_still_decode(rc, seed):
    """A server may answer JSON where frames were asked for (a stored task): base64 forms decode as before."""
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    body = b'{"id": "t", "status": "done", "result": [%s]}' % (
        ('{"dtype": "float32", "shape": [2, 3], "data": "%s"}' % arrays.array_form(a)["data"]).encode())
    task = decode_task(Response(200, {"content-type": JSON}, body))
    got = arrays.decode(task["result"])
    assert np.array_equal(got[0], a)
    # And a framed one decodes into the same.
    from wasmpar.connection import frame_chunks

    doc = b'{"id": "t", "status": "done", "result": [{"dtype": "float32", "shape": [2, 3], "buffer": 0}]}'
    framed = b"".join(bytes(c) for c in frame_chunks(doc, [memoryview(a.tobytes())]))
    task = decode_task(Response(200, {"content-type": FRAMES}, bytearray(framed)))
    assert np.array_equal(arrays.decode(task["result"])[0], a)
    with pytest.raises(wasmpar.WasmparError, match="cut"):
        decode_task(Response(200, {"content-type": FRAMES}, framed[:-3]))
