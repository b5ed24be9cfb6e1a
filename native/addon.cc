// Runs a built plan in-process: dlopen()s the plan's shared library, resolves the stow_* C ABI
// (runtime/core/stow_abi.h) and exposes one Session class to JavaScript. Every call is synchronous: a
// training step holds the event loop, which is what the CLI wants (it prints between steps).
//
// Errors thrown here carry a `code` so that native/index.ts can tell them from programming errors:
//   STOW_LOAD     the library could not be loaded or is not a Stowage plan
//   STOW_RUNTIME  a stow_* call failed; the message is stow_error()'s
//   STOW_NOT_FINITE  stow_save refused a state holding a NaN or an infinity (nothing was written)
//   STOW_CLOSED   the session was used after close()
#include <dlfcn.h>
#include <napi.h>

#include <cmath>
#include <string>
#include <vector>

#include "../runtime/core/stow_abi.h"

namespace {

struct Abi {
  decltype(&stow_open) open;
  decltype(&stow_info) info;
  decltype(&stow_step) step;
  decltype(&stow_save_kept) save;
  decltype(&stow_infer) infer;
  decltype(&stow_error) error;
  decltype(&stow_close) close;
};

Napi::Error codedError(Napi::Env env, const std::string& message, const char* code) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

template <typename Fn>
void resolve(Napi::Env env, void* lib, const std::string& path, const char* name, Fn& out) {
  dlerror();
  out = reinterpret_cast<Fn>(dlsym(lib, name));
  if (out == nullptr)
    throw codedError(env, path + " is not a Stowage plan: it does not define " + name, "STOW_LOAD");
}

// Reads an optional field of the options object. Absent or undefined: the fallback. Present with
// the wrong type: a TypeError naming the field, since a silently ignored option trains the wrong model.
double numberField(const Napi::Object& o, const char* name, double fallback) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("option ") + name + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

// Absent, undefined or null: false. The string stays alive in `out` for as long as the options are used.
bool stringField(const Napi::Object& o, const char* name, std::string& out) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined() || v.IsNull()) return false;
  if (!v.IsString()) throw Napi::TypeError::New(o.Env(), std::string("option ") + name + " must be a string");
  out = v.As<Napi::String>().Utf8Value();
  return true;
}

// One of `choices` by name, as its index.
int choiceField(const Napi::Object& o, const char* name, const std::vector<const char*>& choices, int fallback) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return fallback;
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  for (size_t i = 0; i < choices.size(); i++)
    if (s == choices[i]) return int(i);
  std::string names;
  for (size_t i = 0; i < choices.size(); i++) names += std::string(i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + "\"" + choices[i] + "\"";
  throw Napi::TypeError::New(o.Env(), std::string("option ") + name + " must be " + names);
}

// The generated conversion between a JS options object and StowOptions, which uses the readers above.
#include "stow_options_js.h"

class Session : public Napi::ObjectWrap<Session> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Session",
                       {InstanceMethod<&Session::Info>("info"), InstanceMethod<&Session::Step>("step"),
                        InstanceMethod<&Session::Save>("save"), InstanceMethod<&Session::Infer>("infer"),
                        InstanceMethod<&Session::Close>("close")});
  }

  // Constructed from JS only by openPlan, which passes the library handle and session as externals.
  Session(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Session>(info) {
    if (!info[0].IsExternal() || !info[1].IsExternal())
      throw Napi::TypeError::New(info.Env(), "sessions are made by openPlan()");
    abi_ = *info[0].As<Napi::External<Abi>>().Data();
    session_ = info[1].As<Napi::External<StowSession>>().Data();
  }

  ~Session() override {
    if (session_ != nullptr) abi_.close(session_);
  }

 private:
  StowSession* live(Napi::Env env) {
    if (session_ == nullptr) throw codedError(env, "the plan session is closed", "STOW_CLOSED");
    return session_;
  }

  void check(Napi::Env env, int rc) {
    if (rc == 0) return;
    const char* message = abi_.error(session_);
    throw codedError(env, message && *message ? message : "the plan failed without a message",
                     rc == STOW_NOT_FINITE ? "STOW_NOT_FINITE" : "STOW_RUNTIME");
  }

  // The plan's shapes are needed by infer() on every call; ask the library once.
  const StowInfo& shapes(Napi::Env env) {
    if (!haveInfo_) {
      check(env, abi_.info(live(env), &info_));
      haveInfo_ = true;
    }
    return info_;
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const StowInfo& s = shapes(env);
    Napi::Object o = Napi::Object::New(env);
    o.Set("vocab", double(s.vocab));
    o.Set("batch", double(s.batch));
    o.Set("seq", double(s.seq));
    o.Set("inferSeq", double(s.infer_seq));
    o.Set("arenaBytes", double(s.arena_bytes));
    o.Set("predictedTrainPeak", double(s.predicted_train_peak));
    o.Set("predictedInferPeak", double(s.predicted_infer_peak));
    o.Set("paramCount", double(s.param_count));
    return o;
  }

  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    StowStepResult r{};
    check(env, abi_.step(live(env), &r));
    Napi::Object o = Napi::Object::New(env);
    o.Set("step", double(r.step));
    o.Set("loss", double(r.loss));
    o.Set("lr", double(r.lr));
    o.Set("gradNorm", double(r.grad_norm));
    o.Set("tokens", double(r.tokens));
    o.Set("seconds", r.seconds);
    o.Set("devicePeakBytes", double(r.device_peak_bytes));
    o.Set("hostPeakBytes", double(r.host_peak_bytes));
    o.Set("h2dBytes", double(r.h2d_bytes));
    o.Set("d2hBytes", double(r.d2h_bytes));
    o.Set("deviceBudgetBytes", double(r.device_budget_bytes));
    o.Set("transferWaitSeconds", r.transfer_wait_seconds);
    return o;
  }

  Napi::Value Save(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "save(path, keep): path must be a string");
    if (!info[1].IsUndefined() && !info[1].IsNumber()) throw Napi::TypeError::New(env, "save(path, keep): keep must be a number");
    std::string path = info[0].As<Napi::String>().Utf8Value();
    const int keep = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 1;
    check(env, abi_.save(live(env), path.c_str(), keep));
    return env.Undefined();
  }

  Napi::Value Infer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw Napi::TypeError::New(env, "infer(tokens): tokens must be an Int32Array");
    Napi::Int32Array tokens = info[0].As<Napi::Int32Array>();
    if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "infer(tokens, position): position must be a number");
    const int64_t position = info[1].As<Napi::Number>().Int64Value();
    const StowInfo& s = shapes(env);
    if (int64_t(tokens.ElementLength()) != s.infer_seq)
      throw Napi::RangeError::New(env, "infer(tokens): the plan takes exactly " + std::to_string(s.infer_seq) +
                                           " tokens, got " + std::to_string(tokens.ElementLength()));
    Napi::Float32Array logits = Napi::Float32Array::New(env, size_t(s.vocab));
    check(env, abi_.infer(live(env), tokens.Data(), position, logits.Data()));
    return logits;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (session_ != nullptr) abi_.close(session_);
    session_ = nullptr;
    return info.Env().Undefined();
  }

  Abi abi_{};
  StowSession* session_ = nullptr;
  StowInfo info_{};
  bool haveInfo_ = false;
};

Napi::Value OpenPlan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "openPlan(libPath, options): libPath must be a string");
  if (!info[1].IsObject()) throw Napi::TypeError::New(env, "openPlan(libPath, options): options must be an object");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  Napi::Object o = info[1].As<Napi::Object>();

  OptionStrings strings;
  const StowOptions opts = options_from_js(o, strings);

  // RTLD_LOCAL keeps each plan's symbols to itself, so two plans loaded at once do not bind to each
  // other's stow_plan(). The handle is never dlclose()d: the plan's OpenMP worker threads outlive a
  // session, and unloading code they may still reference is a crash waiting to happen.
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    throw codedError(env, "cannot load the plan library " + path + ": " + (why ? why : "unknown reason"),
                     "STOW_LOAD");
  }
  Abi abi{};
  resolve(env, lib, path, "stow_open", abi.open);
  resolve(env, lib, path, "stow_info", abi.info);
  resolve(env, lib, path, "stow_step", abi.step);
  resolve(env, lib, path, "stow_save_kept", abi.save);
  resolve(env, lib, path, "stow_infer", abi.infer);
  resolve(env, lib, path, "stow_error", abi.error);
  resolve(env, lib, path, "stow_close", abi.close);

  char err[4096] = {0};
  StowSession* session = abi.open(&opts, err, sizeof err);
  if (session == nullptr) throw codedError(env, err[0] ? err : "stow_open failed without a message", "STOW_RUNTIME");

  Napi::FunctionReference* ctor = env.GetInstanceData<Napi::FunctionReference>();
  return ctor->New({Napi::External<Abi>::New(env, &abi), Napi::External<StowSession>::New(env, session)});
}

// The options a plan would receive for this JS object, defaults applied: what openPlan passes to stow_open.
Napi::Value ResolveOptions(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "resolveOptions(options): options must be an object");
  OptionStrings strings;
  return options_to_js(info.Env(), options_from_js(info[0].As<Napi::Object>(), strings));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function session = Session::Define(env);
  env.SetInstanceData(new Napi::FunctionReference(Napi::Persistent(session)));
  exports.Set("openPlan", Napi::Function::New(env, OpenPlan, "openPlan"));
  exports.Set("resolveOptions", Napi::Function::New(env, ResolveOptions, "resolveOptions"));
  return exports;
}

}  // namespace

NODE_API_MODULE(stowage, Init)
