// The tutorial's functions as a wasmpar task, in JavaScript (componentize-js).
//
// Each export of wit/world.wit is an exported function of this module; the
// engine's globals are reached through the imported `wasmpar:engine/namespace`.
// WIT s64 is a BigInt here, list<s64> a BigInt64Array (or an array of BigInt),
// and a variant is `{ tag, val }`.
import { get, set } from 'wasmpar:engine/namespace@0.1.0';

const S64_MIN = -(2n ** 63n);
const S64_MAX = 2n ** 63n - 1n;

// componentize-js 0.23.0 hands a negative s64 to JavaScript as its unsigned
// two's-complement value (-3 arrives as 2^64 - 3), so s64 values read from
// the host go through asIntN. The other way it cannot pass a negative s64 at
// all: returning one or handing one to an import aborts inside its bindings
// (ComponentizeJS issue #343), so `out` refuses it with a readable error.
const fromS64 = (v) => BigInt.asIntN(64, BigInt(v));
function out(v, what) {
  if (v < 0n) {
    throw new RangeError(`${what} = ${v} is negative: componentize-js 0.23.0 cannot pass a negative s64 to the host (ComponentizeJS issue #343)`);
  }
  return v;
}

// value, or a trap naming `what` when it does not fit an s64.
function s64(value, what) {
  if (value < S64_MIN || value > S64_MAX) {
    throw new RangeError(`${what} overflows s64`);
  }
  return value;
}

// The engine's global `name` as a BigInt, or a trap saying why not.
function globalInt(name) {
  const value = get(name);
  if (value === undefined || value === null) {
    throw new Error(`global \`${name}\` is not set on this engine`);
  }
  if (value.tag !== 'int') {
    throw new TypeError(`global \`${name}\`: expected int, found ${value.tag}`);
  }
  return fromS64(value.val);
}

export function add3(x, y, z) {
  return out(s64(fromS64(x) + fromS64(y) + fromS64(z), 'x + y + z'), 'x + y + z');
}

export function hypot2(x, y) {
  [x, y] = [fromS64(x), fromS64(y)];
  return s64(x * x + y * y, 'x² + y²');
}

export function sumChunk(xs) {
  let total = 0n;
  for (const x of xs) total += fromS64(x);
  return out(s64(total, "the chunk's sum"), "the chunk's sum");
}

export function greet(name) {
  console.log(`hello, ${name} from JavaScript`);
  return `hello, ${name}`;
}

export function affine(x) {
  return out(s64(globalInt('a') * fromS64(x) + globalInt('b'), 'a·x + b'), 'a·x + b');
}

export function squares() {
  const xs = get('xs');
  if (!xs || xs.tag !== 'int-list') {
    throw new TypeError('global `xs` must be an int-list');
  }
  const ys = Array.from(xs.val, (x) => s64(fromS64(x) ** 2n, 'x²'));
  set('y', { tag: 'int-list', val: ys });
}

export function bump(name) {
  const count = get(name) === undefined ? 1n : globalInt(name) + 1n;
  set(name, { tag: 'int', val: out(s64(count, name), name) });
  return count;
}

export function fail(msg) {
  throw new Error(msg);
}

// An async export: componentize-js runs the event loop until the promise
// settles. StarlingMonkey's fetch goes out through wasi:http, which the
// engine refuses (no network), so this reports an error, never a response.
export async function fetchStatus(url) {
  try {
    const response = await fetch(url);
    return `status ${response.status}`;
  } catch (e) {
    return `error: ${e && e.message ? e.message : e}`;
  }
}
