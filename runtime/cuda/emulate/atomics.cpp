// CUDA's atomic functions for the emulated target. Blocks run on several OS threads at once, so these
// are the compiler's atomic builtins, sequentially consistent; floats go through compare-and-swap on
// their bits, as the GPU's fallback for types without a native atomic does.
#include <cstring>

#include "cuda_runtime.h"

namespace {

template <class T>
T fetch_add(T* address, T val) {
  return __atomic_fetch_add(address, val, __ATOMIC_SEQ_CST);
}

template <class F, class Bits, class Op>
F update_bits(F* address, Op op) {
  static_assert(sizeof(F) == sizeof(Bits));
  Bits* word = reinterpret_cast<Bits*>(address);
  Bits expected = __atomic_load_n(word, __ATOMIC_SEQ_CST);
  for (;;) {
    F old;
    std::memcpy(&old, &expected, sizeof old);
    const F updated = op(old);
    Bits desired;
    std::memcpy(&desired, &updated, sizeof desired);
    if (__atomic_compare_exchange_n(word, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return old;
  }
}

template <class T>
T fetch_max(T* address, T val) {
  T old = __atomic_load_n(address, __ATOMIC_SEQ_CST);
  while (old < val && !__atomic_compare_exchange_n(address, &old, val, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
  }
  return old;
}

template <class T>
T fetch_min(T* address, T val) {
  T old = __atomic_load_n(address, __ATOMIC_SEQ_CST);
  while (val < old && !__atomic_compare_exchange_n(address, &old, val, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
  }
  return old;
}

template <class T>
T compare_and_swap(T* address, T compare, T val) {
  __atomic_compare_exchange_n(address, &compare, val, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return compare;  // the old value, whether or not it was replaced
}

}  // namespace

int atomicAdd(int* address, int val) { return fetch_add(address, val); }
unsigned atomicAdd(unsigned* address, unsigned val) { return fetch_add(address, val); }
unsigned long long atomicAdd(unsigned long long* address, unsigned long long val) { return fetch_add(address, val); }
float atomicAdd(float* address, float val) {
  return update_bits<float, uint32_t>(address, [val](float old) { return old + val; });
}
double atomicAdd(double* address, double val) {
  return update_bits<double, uint64_t>(address, [val](double old) { return old + val; });
}
int atomicMax(int* address, int val) { return fetch_max(address, val); }
unsigned atomicMax(unsigned* address, unsigned val) { return fetch_max(address, val); }
int atomicMin(int* address, int val) { return fetch_min(address, val); }
unsigned atomicMin(unsigned* address, unsigned val) { return fetch_min(address, val); }
int atomicExch(int* address, int val) { return __atomic_exchange_n(address, val, __ATOMIC_SEQ_CST); }
unsigned atomicExch(unsigned* address, unsigned val) { return __atomic_exchange_n(address, val, __ATOMIC_SEQ_CST); }
float atomicExch(float* address, float val) {
  return update_bits<float, uint32_t>(address, [val](float) { return val; });
}
int atomicCAS(int* address, int compare, int val) { return compare_and_swap(address, compare, val); }
unsigned atomicCAS(unsigned* address, unsigned compare, unsigned val) { return compare_and_swap(address, compare, val); }
unsigned long long atomicCAS(unsigned long long* address, unsigned long long compare, unsigned long long val) {
  return compare_and_swap(address, compare, val);
}
