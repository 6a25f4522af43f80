// The tutorial's functions as a wasmpar task, in C.
//
// wit-bindgen's C generator writes c_task.h / c_task.c from wit/world.wit
// (build.sh does it in a scratch folder); this file implements the exports
// `exports_c_task_*` and calls the engine's namespace through the imported
// `wasmpar_engine_namespace_*`. Ownership follows the canonical ABI: an
// export owns its arguments (and frees them), a string it returns is
// malloc'ed and freed by the generated post-return; an import borrows its
// arguments, and what it returns belongs to the caller.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c_task.h"

// A trap carrying the guest's message: printed to stderr (the engine keeps
// it with the failure), then abort(), which is a wasm `unreachable`.
__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  fputs("error: ", stderr);
  vfprintf(stderr, fmt, args);
  fputc('\n', stderr);
  va_end(args);
  fflush(stderr);
  abort();
}

static int64_t add(int64_t a, int64_t b, const char *what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) fail("%s overflows s64", what);
  return r;
}

static int64_t mul(int64_t a, int64_t b, const char *what) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) fail("%s overflows s64", what);
  return r;
}

// The engine's global `name` as an int, or a trap saying why not.
static bool global_int(const char *name, int64_t *out) {
  c_task_string_t key;
  c_task_string_set(&key, name);
  wasmpar_engine_namespace_value_t value;
  if (!wasmpar_engine_namespace_get(&key, &value)) return false;
  uint8_t tag = value.tag;
  int64_t v = value.val.int_;
  wasmpar_engine_namespace_value_free(&value);
  if (tag != WASMPAR_ENGINE_NAMESPACE_VALUE_INT) fail("global `%s`: expected int, found variant case %u", name, tag);
  *out = v;
  return true;
}

static int64_t require_int(const char *name) {
  int64_t v;
  if (!global_int(name, &v)) fail("global `%s` is not set on this engine", name);
  return v;
}

int64_t exports_c_task_add3(int64_t x, int64_t y, int64_t z) {
  return add(add(x, y, "x + y + z"), z, "x + y + z");
}

int64_t exports_c_task_hypot2(int64_t x, int64_t y) {
  return add(mul(x, x, "x² + y²"), mul(y, y, "x² + y²"), "x² + y²");
}

int64_t exports_c_task_sum_chunk(c_task_list_s64_t *xs) {
  int64_t total = 0;
  for (size_t i = 0; i < xs->len; i++) total = add(total, xs->ptr[i], "the chunk's sum");
  c_task_list_s64_free(xs);
  return total;
}

void exports_c_task_greet(c_task_string_t *name, c_task_string_t *ret) {
  printf("hello, %.*s from C\n", (int)name->len, (const char *)name->ptr);
  fflush(stdout);
  size_t len = strlen("hello, ") + name->len;
  char *text = malloc(len);
  memcpy(text, "hello, ", 7);
  memcpy(text + 7, name->ptr, name->len);
  c_task_string_free(name);
  ret->ptr = (uint8_t *)text;
  ret->len = len;
}

int64_t exports_c_task_affine(int64_t x) {
  return add(mul(require_int("a"), x, "a·x + b"), require_int("b"), "a·x + b");
}

void exports_c_task_squares(void) {
  c_task_string_t key;
  c_task_string_set(&key, "xs");
  wasmpar_engine_namespace_value_t xs;
  if (!wasmpar_engine_namespace_get(&key, &xs)) fail("global `xs` is not set on this engine");
  if (xs.tag != WASMPAR_ENGINE_NAMESPACE_VALUE_INT_LIST) fail("global `xs` must be an int-list");
  // Squared in place: the list is ours until we free it.
  c_task_list_s64_t *list = &xs.val.int_list;
  for (size_t i = 0; i < list->len; i++) list->ptr[i] = mul(list->ptr[i], list->ptr[i], "x²");
  c_task_string_set(&key, "y");
  wasmpar_engine_namespace_set(&key, &xs);
  wasmpar_engine_namespace_value_free(&xs);
}

int64_t exports_c_task_bump(c_task_string_t *name) {
  // NUL-terminated copy for the helpers and messages.
  char *key = strndup((const char *)name->ptr, name->len);
  c_task_string_free(name);
  int64_t count = 0;
  if (global_int(key, &count)) count = add(count, 1, key);
  else count = 1;
  wasmpar_engine_namespace_value_t value = {.tag = WASMPAR_ENGINE_NAMESPACE_VALUE_INT, .val.int_ = count};
  c_task_string_t k;
  c_task_string_set(&k, key);
  wasmpar_engine_namespace_set(&k, &value);
  free(key);
  return count;
}

uint32_t exports_c_task_fail(c_task_string_t *msg) {
  fail("%.*s", (int)msg->len, (const char *)msg->ptr);
}
