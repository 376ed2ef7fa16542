// Runs the PTX wrapper test kernels (ptx_kernels.cuh, ptx_pipeline.cuh, or mutated copies
// found first on the include path) on the SIMT emulator. Usage: ptx_driver MODE DIR; the
// inputs are raw little-endian arrays DIR/<name>.bin written by tests/test_ptx.py, the
// outputs are written beside them (outputs start as NaN). An emulator error is printed
// to stderr and exits with status 3.
#include <ptx_kernels.cuh>
#include <ptx_pipeline.cuh>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

using namespace ptxtest;

static std::string g_dir;

template <typename T>
static std::vector<T> load(const char* name) {
  std::ifstream f(g_dir + "/" + name + ".bin", std::ios::binary);
  if (!f) throw std::runtime_error(std::string("missing input ") + name);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<T> v(bytes.size() / sizeof(T));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(T));
  return v;
}

template <typename T>
static void save(const char* name, const std::vector<T>& v) {
  std::ofstream f(g_dir + "/" + name + ".bin", std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
}

template <typename T>
static std::vector<T> poisoned(std::size_t n) {
  std::vector<T> v(n);
  std::memset(v.data(), 0xff, n * sizeof(T));  // NaN as float; all ones as integers
  return v;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODE DIR\n", argv[0]);
    return 2;
  }
  std::string mode = argv[1];
  g_dir = argv[2];
  try {
    if (mode == "mma_tf32_frag" || mode == "mma_bf16_frag") {
      auto a = load<uint32_t>("a"), b = load<uint32_t>("b");
      auto c = load<float>("c");
      auto d = poisoned<float>(128);
      auto k = mode == "mma_tf32_frag" ? mma_tf32_frag : mma_bf16_frag;
      CCN_LAUNCH(k, 1, 32, 0, nullptr)(a.data(), b.data(), c.data(), d.data());
      save("d", d);
    } else if (mode == "mma_partial_warp") {  // a 16-thread block: half a warp executes the mma
      auto a = load<uint32_t>("a"), b = load<uint32_t>("b");
      auto c = load<float>("c");
      auto d = poisoned<float>(128);
      CCN_LAUNCH(mma_tf32_frag, 1, 16, 0, nullptr)(a.data(), b.data(), c.data(), d.data());
      save("d", d);
    } else if (mode == "mma_tf32_tile" || mode == "mma_bf16_tile" || mode == "mma_bf16_ldmatrix") {
      auto A = load<float>("A"), B = load<float>("B"), C = load<float>("C");
      auto D = poisoned<float>(128);
      auto k = mode == "mma_tf32_tile" ? mma_tf32_tile : (mode == "mma_bf16_tile" ? mma_bf16_tile : mma_bf16_ldmatrix);
      CCN_LAUNCH(k, 1, 32, 0, nullptr)(A.data(), B.data(), C.data(), D.data());
      save("D", D);
    } else if (mode == "ldmatrix") {
      auto M = load<uint16_t>("M");
      auto perm = load<int>("perm");
      auto out = poisoned<uint32_t>(32 * 14);
      CCN_LAUNCH(ldmatrix_all, 1, 32, 0, nullptr)(M.data(), perm.data(), out.data());
      save("out", out);
    } else if (mode == "cvt") {
      auto x = load<float>("x");
      int n = static_cast<int>(x.size());
      auto tf32 = poisoned<uint32_t>(n);
      auto bf16 = poisoned<uint16_t>(n);
      auto bf16x2 = poisoned<uint32_t>(n / 2);
      CCN_LAUNCH(cvt_all, (n + 127) / 128, 128, 0, nullptr)(x.data(), n, tf32.data(), bf16.data(), bf16x2.data());
      save("tf32", tf32);
      save("bf16", bf16);
      save("bf16x2", bf16x2);
    } else if (mode == "cp_async_forms") {
      auto src = load<float>("src");
      auto before = poisoned<float>(256), mid = poisoned<float>(256), after = poisoned<float>(256);
      std::fill(before.begin(), before.end(), 0.f);  // NaN must come from the model, not from here
      std::fill(mid.begin(), mid.end(), 0.f);
      std::fill(after.begin(), after.end(), 0.f);
      CCN_LAUNCH(cp_async_forms, 1, 32, 256 * sizeof(float), nullptr)(src.data(), before.data(), mid.data(),
                                                                        after.data());
      save("before", before);
      save("mid", mid);
      save("after", after);
    } else if (mode == "pipeline") {
      auto dims = load<int>("dims");
      int M = dims[0], N = dims[1], K = dims[2];
      auto A = load<float>("A"), B = load<float>("B");
      auto D = poisoned<float>(static_cast<std::size_t>(M) * N);
      CCN_LAUNCH(pipeline_tf32_gemm, dim3(N / kPipeBN, M / kPipeBM), 64, kPipeSmemFloats * sizeof(float),
                 nullptr)(A.data(), B.data(), D.data(), N, K);
      save("D", D);
    } else {
      std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
      return 2;
    }
  } catch (const ccn::simt::Error& e) {
    std::fprintf(stderr, "simt error: %s\n", e.what());
    return 3;
  }
  std::printf("ran %s\n", mode.c_str());
  return 0;
}
