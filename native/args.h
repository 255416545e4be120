// Reading N-API call arguments with their checks (addon.cc, build.cc): every array argument is a typed
// array of the expected type; the first failure is kept and thrown as a RangeError by done().
#pragma once
#include <node_api.h>
#include <string>

namespace kd {

struct Args {
  napi_env env;
  napi_value v[32];
  size_t n = 32;
  bool ok = true;
  std::string err;

  Args(napi_env e, napi_callback_info info, size_t want) : env(e) {
    if (napi_get_cb_info(env, info, &n, v, nullptr, nullptr) != napi_ok || n != want) fail("expected " + std::to_string(want) + " arguments");
  }
  void fail(const std::string& m) {
    if (ok) err = m;
    ok = false;
  }
  // the typed array argument i (its data and length), or — when nullable and the argument is null — nullptr
  template <typename T>
  T* array(size_t i, napi_typedarray_type want, size_t* length, const char* name, bool nullable = false) {
    bool is = false;
    void* data = nullptr;
    napi_typedarray_type type;
    napi_valuetype vt;
    if (!ok) return nullptr;
    if (nullable && napi_typeof(env, v[i], &vt) == napi_ok && vt == napi_null) { *length = 0; return nullptr; }
    if (napi_is_typedarray(env, v[i], &is) != napi_ok || !is ||
        napi_get_typedarray_info(env, v[i], &type, length, &data, nullptr, nullptr) != napi_ok || type != want) {
      fail(std::string(name) + " must be a " + typeName(want));
      return nullptr;
    }
    return static_cast<T*>(data);
  }
  float* f32(size_t i, size_t need, const char* name) {
    size_t len = 0;
    float* p = array<float>(i, napi_float32_array, &len, name);
    if (p && len < need) fail(std::string(name) + " is too short");
    return p;
  }
  double num(size_t i) {
    double x = 0;
    if (ok && napi_get_value_double(env, v[i], &x) != napi_ok) fail("expected a number");
    return x;
  }
  long count(size_t i) {
    const double x = num(i);
    if (ok && !(x >= 0 && x < 9.0e15 && x == (double)(long)x)) fail("expected a count");
    return (long)x;
  }
  bool flag(size_t i) {
    bool b = false;
    if (ok && napi_get_value_bool(env, v[i], &b) != napi_ok) fail("expected a boolean");
    return b;
  }
  // throws the first failure; else returns r
  napi_value done(napi_value r = nullptr) {
    if (!ok) {
      napi_throw_range_error(env, nullptr, ("kd native: " + err).c_str());
      return nullptr;
    }
    return r;
  }
  napi_value number(double x) {
    napi_value r;
    napi_create_double(env, x, &r);
    return r;
  }
  static const char* typeName(napi_typedarray_type t) {
    switch (t) {
      case napi_float64_array: return "Float64Array";
      case napi_float32_array: return "Float32Array";
      case napi_int32_array: return "Int32Array";
      case napi_uint16_array: return "Uint16Array";
      case napi_uint8_array: return "Uint8Array";
      default: return "typed array";
    }
  }
};

// one exported function of a module's property list
inline napi_property_descriptor method(const char* name, napi_callback f) {
  return {name, nullptr, f, nullptr, nullptr, nullptr, napi_default, nullptr};
}

}  // namespace kd
