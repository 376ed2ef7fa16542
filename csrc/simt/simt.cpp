// SIMT emulator runtime: the grid/block/fiber scheduler behind simt.h (ARCHITECTURE.md §5).
//
// A launch spreads its blocks over OS worker threads (CCN_SIMT_THREADS, default: the
// machine's cores). A block runs on one worker:
//   1. Plain mode. One fiber runs the block's threads one after another, in the selected
//      order, each to completion. A barrier-free kernel never leaves this mode.
//   2. Fiber mode. The first time a thread reaches a barrier (__syncthreads or a warp
//      collective), it is suspended where it stands and every thread not yet started gets
//      its own fiber. The scheduler then runs the ready fibers in the selected order until
//      each is done or waiting, releases whatever barrier is complete, and repeats.
// Threads that finished in plain mode before the first barrier exited without reaching it;
// if they belong to the barrier, that is a divergent barrier and an error.
// Fibers: Boost.Context's fcontext (CCN_SIMT_BOOST_CONTEXT) or glibc ucontext.
#include "simt.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#if defined(CCN_SIMT_BOOST_CONTEXT)
#include <boost/context/detail/fcontext.hpp>
#else
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define CCN_SIMT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CCN_SIMT_ASAN 1
#endif
#endif
#if defined(CCN_SIMT_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace ccn {
namespace simt {

thread_local uint3 tl_threadIdx;
thread_local uint3 tl_blockIdx;
thread_local dim3 tl_blockDim;
thread_local dim3 tl_gridDim;

namespace {

// ---------------------------------------------------------------- configuration
enum class Order { kForward, kReverse, kShuffle };

struct Config {
  Order order = Order::kForward;
  unsigned long long seed = 0;
  unsigned workers = 1;
  std::size_t stack_bytes = 0;
};

Config read_config() {
  Config c;
  const char* o = std::getenv("CCN_SIMT_ORDER");
  std::string s = o ? o : "forward";
  if (s == "forward" || s.empty()) {
    c.order = Order::kForward;
  } else if (s == "reverse") {
    c.order = Order::kReverse;
  } else if (s.rfind("shuffle", 0) == 0) {
    c.order = Order::kShuffle;
    c.seed = 1;
    if (s.size() > 8 && s[7] == ':') c.seed = std::strtoull(s.c_str() + 8, nullptr, 10);
  } else {
    throw Error("CCN_SIMT_ORDER must be forward, reverse or shuffle[:SEED], not '" + s + "'");
  }
  const char* w = std::getenv("CCN_SIMT_THREADS");
  unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  c.workers = w ? static_cast<unsigned>(std::max(1L, std::strtol(w, nullptr, 10))) : hw;
  const char* st = std::getenv("CCN_SIMT_STACK_KB");
#if defined(CCN_SIMT_ASAN)
  std::size_t kb = 1024;  // ASan's redzones make frames several times larger
#else
  std::size_t kb = 256;
#endif
  if (st) kb = static_cast<std::size_t>(std::max(16L, std::strtol(st, nullptr, 10)));
  c.stack_bytes = kb * 1024;
  return c;
}

// ---------------------------------------------------------------- fiber stacks
// mmap'd with a PROT_NONE guard page below, so a stack overflow faults instead of
// silently corrupting the neighbouring fiber's stack.
struct Stack {
  void* base = nullptr;  // start of the mapping (guard page)
  std::size_t size = 0;  // usable bytes above the guard page
  void* bottom() const { return static_cast<char*>(base) + page(); }
  void* top() const { return static_cast<char*>(bottom()) + size; }
  static std::size_t page() { return static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }
};

Stack make_stack(std::size_t size) {
  Stack s;
  s.size = size;
  s.base = mmap(nullptr, size + Stack::page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                -1, 0);
  if (s.base == MAP_FAILED) throw Error("simt: cannot map a fiber stack");
  mprotect(s.base, Stack::page(), PROT_NONE);
  return s;
}

// A fiber's last frame (fiber_main) never returns, so ASan never clears its redzones in
// the shadow memory; nor does unmapping the stack. Left poisoned, they turn the next user
// of that address range (a NumPy array, another fiber stack) into false
// "stack-buffer-underflow" reports. Clear the shadow before the range goes back.
void unmap_stack(Stack& s) {
#if defined(CCN_SIMT_ASAN)
  __asan_unpoison_memory_region(s.base, s.size + Stack::page());
#endif
  munmap(s.base, s.size + Stack::page());
}

// ---------------------------------------------------------------- fibers
enum class State { kReady, kAtBlockBarrier, kAtWarpBarrier, kDone };

struct Fiber {
#if defined(CCN_SIMT_BOOST_CONTEXT)
  boost::context::detail::fcontext_t ctx = nullptr;
#else
  ucontext_t ctx;
#endif
  Stack* stack = nullptr;
};

// One cp.async copy, recorded at issue and performed at the wait that covers its group.
struct AsyncCopy {
  void* dst;
  const void* src;
  unsigned bytes, src_bytes;
};

struct Thread {
  State state = State::kReady;
  bool started = false;
  int fiber = -1;          // index of the fiber running this thread (-1: not started)
  const char* file = "";   // where it waits
  int line = 0;
  unsigned mask = 0;       // warp collective mask
  unsigned long long deposit = 0;
  unsigned long long* out = nullptr;  // where the exchange result goes
  WarpCombine combine = nullptr;       // warp_collective: the operation (null: a plain exchange)
  const char* name = nullptr;          // its instruction name, for error messages
  const void* cin = nullptr;           // warp_collective: this lane's inputs and outputs
  void* cout = nullptr;
  std::vector<std::vector<AsyncCopy>> cp_groups;  // committed cp.async groups, oldest first
  std::vector<AsyncCopy> cp_open;                 // issued since the last commit
};

class BlockRunner;
thread_local BlockRunner* tl_runner = nullptr;

class BlockRunner {
 public:
  BlockRunner(const Config& cfg, dim3 block, std::size_t smem, KernelBody body, void* arg)
      : cfg_(cfg), block_(block), smem_bytes_(smem), body_(body), arg_(arg) {
    n_ = static_cast<int>(block.x * block.y * block.z);
    threads_.resize(n_);
    if (smem_bytes_) {
      // Exactly the launch's size: an index past it is a heap overflow under ASan.
      smem_ = std::malloc(smem_bytes_);
      if (!smem_) throw Error("simt: cannot allocate dynamic shared memory");
    }
  }
  ~BlockRunner() {
    std::free(smem_);
    for (auto& s : stacks_) unmap_stack(*s);
  }

  void* dynamic_shared() const { return smem_; }

  void run_block(unsigned long long block_linear) {
    block_linear_ = block_linear;
    phase_ = 0;
    for (auto& t : threads_) t = Thread();
    fibers_.clear();
    // Never reallocated while a fiber is suspended: a ucontext_t points into itself.
    fibers_.reserve(n_ + 1);
    if (smem_) {
      // Poison: 0x7fc00000 is a quiet NaN as float, and two of them are a NaN double.
      auto* w = static_cast<uint32_t*>(smem_);
      for (std::size_t i = 0; i < smem_bytes_ / 4; ++i) w[i] = 0x7fc00000u;
      std::memset(static_cast<char*>(smem_) + smem_bytes_ / 4 * 4, 0xff, smem_bytes_ % 4);
    }
    order_ = make_order();
    fiber_mode_ = false;
    plain_next_ = 0;
    // Plain mode: fiber 0 runs the threads one after another until one hits a barrier.
    new_fiber(-1);
    resume(0);
    if (!fiber_mode_) {
      rethrow_pending();
      return;  // every thread finished without a barrier
    }
    // Fiber mode: give every not-yet-started thread its own fiber.
    for (int t : order_)
      if (!threads_[t].started) {
        threads_[t].started = true;
        threads_[t].fiber = new_fiber(t);
      }
    schedule();
  }

  // Called on a fiber when its thread reaches a barrier.
  void wait_at_block_barrier(const char* file, int line) {
    Thread& t = threads_[current_];
    t.state = State::kAtBlockBarrier;
    t.file = file;
    t.line = line;
    suspend();
  }

  void warp_exchange(unsigned mask, unsigned long long value, unsigned long long out[32], const char* file,
                     int line) {
    Thread& t = threads_[current_];
    unsigned lane = static_cast<unsigned>(current_) & 31u;
    if (!((mask >> lane) & 1u)) {
      std::ostringstream m;
      m << "simt: thread " << current_ << " calls a warp collective at " << file << ":" << line
        << " with a mask that excludes its own lane";
      throw Error(m.str());
    }
    for (int l = 0; l < 32; ++l) out[l] = value;
    t.state = State::kAtWarpBarrier;
    t.mask = mask & lanes_present(current_ / 32);
    t.deposit = value;
    t.out = out;
    t.combine = nullptr;
    t.name = "a warp shuffle/vote";
    t.file = file;
    t.line = line;
    suspend();
  }

  void warp_collective(unsigned mask, const void* in, void* out, WarpCombine combine, const char* name,
                       const char* file, int line) {
    Thread& t = threads_[current_];
    unsigned lane = static_cast<unsigned>(current_) & 31u;
    if (!((mask >> lane) & 1u)) {
      std::ostringstream m;
      m << "simt: thread " << current_ << " executes " << name << " at " << file << ":" << line
        << " with a mask that excludes its own lane";
      throw Error(m.str());
    }
    t.state = State::kAtWarpBarrier;
    t.mask = mask & lanes_present(current_ / 32);
    t.combine = combine;
    t.name = name;
    t.cin = in;
    t.cout = out;
    t.out = nullptr;
    t.file = file;
    t.line = line;
    suspend();
  }

  // ---- cp.async (see simt.h)
  void cp_async(void* dst, const void* src, unsigned bytes, unsigned src_bytes, const char* file, int line) {
    bool bad_size = bytes != 4 && bytes != 8 && bytes != 16;
    bool bad_src_size = src_bytes > bytes;
    bool misaligned = !bad_size && (reinterpret_cast<std::uintptr_t>(dst) % bytes != 0 ||
                                    (src_bytes > 0 && reinterpret_cast<std::uintptr_t>(src) % bytes != 0));
    if (bad_size || bad_src_size || misaligned) {
      std::ostringstream m;
      m << "simt: thread " << current_ << ": cp.async at " << file << ":" << line << ": ";
      if (bad_size) m << bytes << " bytes (4, 8 or 16)";
      else if (bad_src_size) m << "src-size " << src_bytes << " exceeds cp-size " << bytes;
      else m << "an address not aligned to its " << bytes << " bytes";
      throw Error(m.str());
    }
    // Undefined until the copy completes: a read before the covering wait sees NaN.
    auto* w = static_cast<uint32_t*>(dst);
    for (unsigned i = 0; i < bytes / 4; ++i) w[i] = 0x7fc00000u;
    threads_[current_].cp_open.push_back(AsyncCopy{dst, src, bytes, src_bytes});
  }
  void cp_async_commit() {
    Thread& t = threads_[current_];
    t.cp_groups.push_back(std::move(t.cp_open));
    t.cp_open.clear();
  }
  void cp_async_wait(int n) {
    Thread& t = threads_[current_];
    std::size_t keep = n < 0 ? 0 : static_cast<std::size_t>(n);
    std::size_t done = 0;
    for (; done + keep < t.cp_groups.size(); ++done)
      for (const AsyncCopy& c : t.cp_groups[done]) {
        if (c.src_bytes) std::memcpy(c.dst, c.src, c.src_bytes);
        std::memset(static_cast<char*>(c.dst) + c.src_bytes, 0, c.bytes - c.src_bytes);
      }
    t.cp_groups.erase(t.cp_groups.begin(), t.cp_groups.begin() + static_cast<std::ptrdiff_t>(done));
  }

  unsigned active_mask() const {
    int w = current_ / 32;
    unsigned m = 0;
    for (int l = 0; l < 32; ++l) {
      int t = w * 32 + l;
      if (t < n_ && threads_[t].state != State::kDone) m |= 1u << l;
    }
    return m;
  }
  int current() const { return current_; }

 private:
  unsigned lanes_present(int warp) const {
    int remaining = n_ - warp * 32;
    return remaining >= 32 ? 0xffffffffu : ((1u << remaining) - 1u);
  }

  std::vector<int> make_order() {
    std::vector<int> o(n_);
    for (int i = 0; i < n_; ++i) o[i] = i;
    if (cfg_.order == Order::kReverse) {
      std::reverse(o.begin(), o.end());
    } else if (cfg_.order == Order::kShuffle) {
      std::mt19937_64 rng(cfg_.seed * 0x9E3779B97F4A7C15ull + block_linear_ * 1000003ull + phase_);
      std::shuffle(o.begin(), o.end(), rng);
    }
    return o;
  }

  void set_thread_index(int t) {
    current_ = t;
    tl_threadIdx.x = static_cast<unsigned>(t) % block_.x;
    tl_threadIdx.y = (static_cast<unsigned>(t) / block_.x) % block_.y;
    tl_threadIdx.z = static_cast<unsigned>(t) / (block_.x * block_.y);
  }

  // ---- context switching
  int new_fiber(int thread) {
    int id = static_cast<int>(fibers_.size());
    fibers_.emplace_back();
    if (static_cast<int>(stacks_.size()) <= id) stacks_.push_back(std::make_unique<Stack>(make_stack(cfg_.stack_bytes)));
    Fiber& f = fibers_.back();
    f.stack = stacks_[id].get();
    fiber_thread_.resize(fibers_.size());
    fiber_thread_[id] = thread;
#if defined(CCN_SIMT_BOOST_CONTEXT)
    f.ctx = boost::context::detail::make_fcontext(f.stack->top(), f.stack->size, &BlockRunner::fcontext_entry);
#else
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack->bottom();
    f.ctx.uc_stack.ss_size = f.stack->size;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, reinterpret_cast<void (*)()>(&BlockRunner::ucontext_entry), 0);
#endif
    return id;
  }

  void resume(int fiber) {
    running_fiber_ = fiber;
    if (fiber_thread_[fiber] >= 0) set_thread_index(fiber_thread_[fiber]);
#if defined(CCN_SIMT_ASAN)
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, fibers_[fiber].stack->bottom(), fibers_[fiber].stack->size);
#endif
#if defined(CCN_SIMT_BOOST_CONTEXT)
    auto tr = boost::context::detail::jump_fcontext(fibers_[fiber].ctx, this);
    fibers_[fiber].ctx = tr.fctx;
#else
    swapcontext(&sched_ctx_, &fibers_[fiber].ctx);
#endif
#if defined(CCN_SIMT_ASAN)
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  }

  // On a fiber: hand control back to the scheduler.
  void suspend() {
#if defined(CCN_SIMT_ASAN)
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, sched_stack_bottom_, sched_stack_size_);
#endif
#if defined(CCN_SIMT_BOOST_CONTEXT)
    auto tr = boost::context::detail::jump_fcontext(sched_ctx_, nullptr);
    sched_ctx_ = tr.fctx;
#else
    swapcontext(&fibers_[running_fiber_].ctx, &sched_ctx_);
#endif
#if defined(CCN_SIMT_ASAN)
    __sanitizer_finish_switch_fiber(fake, &sched_stack_bottom_, &sched_stack_size_);
#endif
    // Resumed: the scheduler already restored our threadIdx.
  }

#if defined(CCN_SIMT_BOOST_CONTEXT)
  static void fcontext_entry(boost::context::detail::transfer_t tr) {
    BlockRunner* self = static_cast<BlockRunner*>(tr.data);
    self->sched_ctx_ = tr.fctx;
    self->fiber_main();
  }
#else
  static void ucontext_entry() { tl_runner->fiber_main(); }
#endif

  void fiber_main() {
#if defined(CCN_SIMT_ASAN)
    __sanitizer_finish_switch_fiber(nullptr, &sched_stack_bottom_, &sched_stack_size_);
#endif
    int fiber = running_fiber_;
    try {
      if (fiber_thread_[fiber] < 0) {
        // Plain mode: run threads in order until fiber mode starts.
        while (!fiber_mode_ && plain_next_ < n_) {
          int t = order_[plain_next_++];
          threads_[t].started = true;
          threads_[t].fiber = fiber;
          fiber_thread_[fiber] = t;
          set_thread_index(t);
          body_(arg_);
          threads_[t].state = State::kDone;
        }
      } else {
        body_(arg_);
        threads_[fiber_thread_[fiber]].state = State::kDone;
      }
    } catch (...) {
      if (!pending_) pending_ = std::current_exception();
      if (fiber_thread_[fiber] >= 0) threads_[fiber_thread_[fiber]].state = State::kDone;
    }
#if defined(CCN_SIMT_ASAN)
    __sanitizer_start_switch_fiber(nullptr, sched_stack_bottom_, sched_stack_size_);
#endif
#if defined(CCN_SIMT_BOOST_CONTEXT)
    boost::context::detail::jump_fcontext(sched_ctx_, nullptr);
#else
    setcontext(&sched_ctx_);
#endif
    std::abort();  // a finished fiber is never resumed
  }

  void rethrow_pending() {
    if (pending_) {
      auto e = pending_;
      pending_ = nullptr;
      std::rethrow_exception(e);
    }
  }

  // ---- fiber-mode scheduling
  void schedule() {
    for (;;) {
      for (int t : order_)
        if (threads_[t].state == State::kReady) resume(threads_[t].fiber);
      rethrow_pending();
      if (all_done()) return;
      // Nobody is ready now: each thread is done or waits at a barrier. If no barrier can
      // be released, none ever will.
      if (release_barriers() == 0) report_deadlock();
    }
  }

  bool all_done() const {
    for (const auto& t : threads_)
      if (t.state != State::kDone) return false;
    return true;
  }

  // Release every complete warp collective, or, when nothing but block-barrier waiters
  // remain, the block barrier. Returns how many threads were released.
  int release_barriers() {
    int released = 0;
    for (int t = 0; t < n_; ++t) {
      if (threads_[t].state != State::kAtWarpBarrier) continue;
      int warp = t / 32;
      unsigned mask = threads_[t].mask;
      bool complete = true;
      const Thread& me = threads_[t];
      for (int l = 0; l < 32 && complete; ++l) {
        if (!((mask >> l) & 1u)) continue;
        const Thread& o = threads_[warp * 32 + l];
        if (o.state != State::kAtWarpBarrier || o.mask != mask || o.combine != me.combine) complete = false;
        // A combining collective (mma.sync, ldmatrix) is one instruction: same call site.
        else if (me.combine && (o.line != me.line || (o.file != me.file && std::strcmp(o.file, me.file) != 0)))
          complete = false;
      }
      if (!complete) continue;  // reported as a deadlock if nothing else moves
      if (me.combine) {
        const void* ins[32] = {};
        void* outs[32] = {};
        for (int l = 0; l < 32; ++l)
          if ((mask >> l) & 1u) {
            ins[l] = threads_[warp * 32 + l].cin;
            outs[l] = threads_[warp * 32 + l].cout;
          }
        me.combine(ins, outs, mask);
      }
      for (int l = 0; l < 32; ++l) {
        if (!((mask >> l) & 1u)) continue;
        Thread& o = threads_[warp * 32 + l];
        if (!o.combine)
          for (int s = 0; s < 32; ++s)
            if ((mask >> s) & 1u) o.out[s] = threads_[warp * 32 + s].deposit;
        o.state = State::kReady;
        ++released;
      }
    }
    if (released) {
      next_phase();
      return released;
    }
    // Block barrier: every thread of the block must wait at it, at the same place.
    int waiting = 0, done = 0;
    for (const auto& t : threads_) {
      waiting += t.state == State::kAtBlockBarrier;
      done += t.state == State::kDone;
    }
    if (waiting == 0 || waiting + done != n_) return 0;
    if (done) report_divergent_exit();
    const Thread& first = threads_[order_[0]];
    for (const auto& t : threads_)  // __FILE__ literals of one file share a pointer: strcmp rarely runs
      if (t.line != first.line || (t.file != first.file && std::strcmp(t.file, first.file) != 0))
        report_divergent_sites();
    for (auto& t : threads_) t.state = State::kReady;
    next_phase();
    return n_;
  }

  void next_phase() {
    ++phase_;
    if (cfg_.order == Order::kShuffle) order_ = make_order();
  }

  std::string where() const {
    std::ostringstream m;
    m << "block (" << tl_blockIdx.x << "," << tl_blockIdx.y << "," << tl_blockIdx.z << ")";
    return m.str();
  }

  [[noreturn]] void report_divergent_exit() {
    std::ostringstream m;
    int waiter = -1, exited = -1;
    for (int i = 0; i < n_; ++i) {
      if (threads_[i].state == State::kAtBlockBarrier && waiter < 0) waiter = i;
      if (threads_[i].state == State::kDone && exited < 0) exited = i;
    }
    m << "simt: divergent __syncthreads in " << where() << ": thread " << waiter << " waits at "
      << threads_[waiter].file << ":" << threads_[waiter].line << " but thread " << exited
      << " exited without reaching it";
    throw Error(m.str());
  }

  [[noreturn]] void report_divergent_sites() {
    std::ostringstream m;
    m << "simt: divergent __syncthreads in " << where() << ": threads wait at different barriers";
    for (int i = 0; i < n_; ++i)
      if (threads_[i].line != threads_[0].line || std::strcmp(threads_[i].file, threads_[0].file) != 0) {
        m << " (thread 0 at " << threads_[0].file << ":" << threads_[0].line << ", thread " << i << " at "
          << threads_[i].file << ":" << threads_[i].line << ")";
        break;
      }
    throw Error(m.str());
  }

  [[noreturn]] void report_deadlock() {
    std::ostringstream m;
    // A combining warp collective (mma.sync, ldmatrix) that a lane of its mask exited
    // before, or waits elsewhere: name both.
    for (int i = 0; i < n_; ++i) {
      const Thread& t = threads_[i];
      if (t.state != State::kAtWarpBarrier || !t.combine) continue;
      int warp = i / 32;
      for (int l = 0; l < 32; ++l) {
        if (!((t.mask >> l) & 1u)) continue;
        const Thread& o = threads_[warp * 32 + l];
        bool same = o.state == State::kAtWarpBarrier && o.combine == t.combine && o.line == t.line &&
                    std::strcmp(o.file, t.file) == 0;
        if (same) continue;
        m << "simt: divergent warp collective in " << where() << ": thread " << i << " waits at " << t.name
          << " at " << t.file << ":" << t.line << " but thread " << warp * 32 + l;
        if (o.state == State::kDone) m << " exited without reaching it";
        else if (o.state == State::kAtWarpBarrier) m << " waits at " << o.name << " at " << o.file << ":" << o.line;
        else m << " waits at __syncthreads at " << o.file << ":" << o.line;
        throw Error(m.str());
      }
    }
    m << "simt: deadlock in " << where() << ", a barrier no thread can pass:";
    int shown = 0;
    for (int i = 0; i < n_ && shown < 4; ++i) {
      const Thread& t = threads_[i];
      if (t.state == State::kAtWarpBarrier) {
        m << " thread " << i << " waits at the warp collective at " << t.file << ":" << t.line << " (mask 0x"
          << std::hex << t.mask << std::dec << ");";
        ++shown;
      } else if (t.state == State::kAtBlockBarrier) {
        m << " thread " << i << " waits at __syncthreads at " << t.file << ":" << t.line << ";";
        ++shown;
      } else if (t.state == State::kDone && shown < 4) {
        m << " thread " << i << " exited;";
        ++shown;
      }
    }
    throw Error(m.str());
  }

  const Config& cfg_;
  dim3 block_;
  std::size_t smem_bytes_;
  KernelBody body_;
  void* arg_;
  int n_ = 0;
  void* smem_ = nullptr;
  unsigned long long block_linear_ = 0;
  unsigned long long phase_ = 0;
  std::vector<Thread> threads_;
  std::vector<int> order_;
  std::vector<Fiber> fibers_;
  std::vector<int> fiber_thread_;
  std::vector<std::unique_ptr<Stack>> stacks_;
  int current_ = 0;
  int running_fiber_ = 0;
  bool fiber_mode_ = false;
  int plain_next_ = 0;
  std::exception_ptr pending_;
#if defined(CCN_SIMT_BOOST_CONTEXT)
  boost::context::detail::fcontext_t sched_ctx_ = nullptr;
#else
  ucontext_t sched_ctx_;
#endif
  const void* sched_stack_bottom_ = nullptr;
  std::size_t sched_stack_size_ = 0;

 public:
  // A barrier reached in plain mode switches the block to fiber mode.
  void enter_fiber_mode() { fiber_mode_ = true; }
};

BlockRunner& runner() {
  if (!tl_runner) throw Error("simt: a CUDA device function was called outside a kernel launch");
  return *tl_runner;
}

}  // namespace

void syncthreads(const char* file, int line) {
  BlockRunner& r = runner();
  r.enter_fiber_mode();
  r.wait_at_block_barrier(file, line);
}

void warp_exchange(unsigned mask, unsigned long long value, unsigned long long out[32], const char* file,
                   int line) {
  BlockRunner& r = runner();
  r.enter_fiber_mode();
  r.warp_exchange(mask, value, out, file, line);
}

void warp_collective(unsigned mask, const void* in, void* out, WarpCombine combine, const char* name,
                     const char* file, int line) {
  BlockRunner& r = runner();
  r.enter_fiber_mode();
  r.warp_collective(mask, in, out, combine, name, file, line);
}

void cp_async(void* dst, const void* src, unsigned bytes, unsigned src_bytes, const char* file, int line) {
  runner().cp_async(dst, src, bytes, src_bytes, file, line);
}
void cp_async_commit() { runner().cp_async_commit(); }
void cp_async_wait(int n) { runner().cp_async_wait(n); }

unsigned active_mask() { return runner().active_mask(); }
unsigned lane_id() { return static_cast<unsigned>(runner().current()) & 31u; }
void* dynamic_shared() {
  void* p = runner().dynamic_shared();
  if (!p) throw Error("simt: dynamic shared memory used by a kernel launched with 0 bytes of it");
  return p;
}
void threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

void launch(dim3 grid, dim3 block, std::size_t smem, KernelBody body, void* arg) {
  if (tl_runner) throw Error("simt: kernel launched from inside a kernel (dynamic parallelism is not emulated)");
  unsigned long long nthreads = 1ull * block.x * block.y * block.z;
  unsigned long long nblocks = 1ull * grid.x * grid.y * grid.z;
  if (nthreads == 0 || nthreads > 1024 || block.z > 64)
    throw Error("simt: invalid block size " + std::to_string(block.x) + "x" + std::to_string(block.y) + "x" +
                std::to_string(block.z) + " (CUDA allows 1..1024 threads, z <= 64)");
  if (grid.y > 65535 || grid.z > 65535) throw Error("simt: grid.y and grid.z must be <= 65535");
  if (smem > 227 * 1024) throw Error("simt: dynamic shared memory above 227 KiB (the H100's limit)");
  if (nblocks == 0) return;  // like CUDA: an empty grid is a launch error there; here, nothing to do
  Config cfg = read_config();
  unsigned workers = static_cast<unsigned>(std::min<unsigned long long>(cfg.workers, nblocks));
  std::atomic<unsigned long long> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mu;

  auto work = [&]() {
    try {
      BlockRunner r(cfg, block, smem, body, arg);
      tl_runner = &r;
      tl_blockDim = block;
      tl_gridDim = grid;
      for (;;) {
        if (failed.load(std::memory_order_relaxed)) break;
        unsigned long long b = next.fetch_add(1);
        if (b >= nblocks) break;
        tl_blockIdx.x = static_cast<unsigned>(b % grid.x);
        tl_blockIdx.y = static_cast<unsigned>((b / grid.x) % grid.y);
        tl_blockIdx.z = static_cast<unsigned>(b / (1ull * grid.x * grid.y));
        r.run_block(b);
      }
      tl_runner = nullptr;
    } catch (...) {
      tl_runner = nullptr;
      std::lock_guard<std::mutex> g(error_mu);
      if (!error) error = std::current_exception();
      failed = true;
    }
  };
  if (workers <= 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    pool.reserve(workers - 1);
    for (unsigned i = 1; i < workers; ++i) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace simt
}  // namespace ccn
