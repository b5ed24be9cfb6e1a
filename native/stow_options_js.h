// Generated from runtime/run_contract.ts by runtime/contract/render.ts (npm run gen:contract); do not edit.
// The addon's conversion (native/addon.cc) of a JS options object into the C ABI's StowOptions, and back
// (resolveOptions). An absent option takes the run contract's default; one of the wrong type is a
// TypeError naming it (numberField, stringField and choiceField are addon.cc's).
#pragma once

// The strings of a StowOptions, kept alive by the caller for as long as the struct is used.
struct OptionStrings {
  std::string data_path;
  std::string init_path;
  std::string resume_path;
  std::string metrics_path;
  std::string disk_path;
  std::string profile_path;
  std::string model_path;
  std::string model_sha256;
};

inline StowOptions options_from_js(const Napi::Object& js, OptionStrings& strings) {
  // Numbers are read as doubles first: a derived default follows the value as given, not its float.
  const double seed = numberField(js, "seed", 1337);
  const double threads = numberField(js, "threads", 0);
  const double steps = numberField(js, "steps", 1000);
  const double lr = numberField(js, "lr", 0.002);
  const double min_lr = numberField(js, "minLr", double(stow_derived_min_lr(lr)));
  const double warmup_steps = numberField(js, "warmupSteps", double(stow_derived_warmup_steps(steps)));
  const double weight_decay = numberField(js, "weightDecay", 0.1);
  const double beta1 = numberField(js, "beta1", 0.9);
  const double beta2 = numberField(js, "beta2", 0.95);
  const double eps = numberField(js, "eps", 1e-8);
  const double grad_clip = numberField(js, "gradClip", 1);
  const double host_memory = numberField(js, "hostMemory", 0);
  const double link_gbps = numberField(js, "linkGbps", 0);
  const double profile_steps = numberField(js, "profileSteps", 0);
  StowOptions o{};
  o.data_path = stringField(js, "dataPath", strings.data_path) ? strings.data_path.c_str() : nullptr;
  o.init_path = stringField(js, "initPath", strings.init_path) ? strings.init_path.c_str() : nullptr;
  o.resume_path = stringField(js, "resumePath", strings.resume_path) ? strings.resume_path.c_str() : nullptr;
  o.metrics_path = stringField(js, "metricsPath", strings.metrics_path) ? strings.metrics_path.c_str() : nullptr;
  o.seed = uint64_t(seed);
  o.threads = int(threads);
  o.steps = int64_t(steps);
  o.lr = float(lr);
  o.min_lr = float(min_lr);
  o.lr_schedule = choiceField(js, "lrSchedule", {"constant", "cosine"}, 1);
  o.warmup_steps = int64_t(warmup_steps);
  o.weight_decay = float(weight_decay);
  o.beta1 = float(beta1);
  o.beta2 = float(beta2);
  o.eps = float(eps);
  o.grad_clip = float(grad_clip);
  o.host_memory = int64_t(host_memory);
  o.disk_path = stringField(js, "diskPath", strings.disk_path) ? strings.disk_path.c_str() : nullptr;
  o.link_gbps = double(link_gbps);
  o.profile_path = stringField(js, "profilePath", strings.profile_path) ? strings.profile_path.c_str() : nullptr;
  o.profile_steps = int64_t(profile_steps);
  o.model_path = stringField(js, "modelPath", strings.model_path) ? strings.model_path.c_str() : nullptr;
  o.model_sha256 = stringField(js, "modelSha256", strings.model_sha256) ? strings.model_sha256.c_str() : nullptr;
  return o;
}

// The options as the plan receives them, by C name (a choice by its name, an absent string as null).
inline Napi::Object options_to_js(Napi::Env env, const StowOptions& o) {
  Napi::Object js = Napi::Object::New(env);
  js.Set("data_path", o.data_path == nullptr ? env.Null() : Napi::String::New(env, o.data_path));
  js.Set("init_path", o.init_path == nullptr ? env.Null() : Napi::String::New(env, o.init_path));
  js.Set("resume_path", o.resume_path == nullptr ? env.Null() : Napi::String::New(env, o.resume_path));
  js.Set("metrics_path", o.metrics_path == nullptr ? env.Null() : Napi::String::New(env, o.metrics_path));
  js.Set("seed", double(o.seed));
  js.Set("threads", double(o.threads));
  js.Set("steps", double(o.steps));
  js.Set("lr", double(o.lr));
  js.Set("min_lr", double(o.min_lr));
  js.Set("lr_schedule", Napi::String::New(env, std::vector<const char*>{"constant", "cosine"}.at(size_t(o.lr_schedule))));
  js.Set("warmup_steps", double(o.warmup_steps));
  js.Set("weight_decay", double(o.weight_decay));
  js.Set("beta1", double(o.beta1));
  js.Set("beta2", double(o.beta2));
  js.Set("eps", double(o.eps));
  js.Set("grad_clip", double(o.grad_clip));
  js.Set("host_memory", double(o.host_memory));
  js.Set("disk_path", o.disk_path == nullptr ? env.Null() : Napi::String::New(env, o.disk_path));
  js.Set("link_gbps", double(o.link_gbps));
  js.Set("profile_path", o.profile_path == nullptr ? env.Null() : Napi::String::New(env, o.profile_path));
  js.Set("profile_steps", double(o.profile_steps));
  js.Set("model_path", o.model_path == nullptr ? env.Null() : Napi::String::New(env, o.model_path));
  js.Set("model_sha256", o.model_sha256 == nullptr ? env.Null() : Napi::String::New(env, o.model_sha256));
  return js;
}
