/* LD_PRELOAD shim that makes one componentize-py compile deterministic (hatch-wasm-oci).

   componentize-py pre-initialises the app inside wasmtime and snapshots the Python heap. What
   the guest saw then stays in the component: randomness (hash secret, `random` state), the wall
   clock, and the times of the files it looked at (also in freed memory). This library is built
   for one compile in a private directory, loaded into that compiler process only, and:

   - answers getrandom/getentropy/syscall(SYS_getrandom) from a stream derived from
     HATCH_WASM_OCI_SEED, per thread (the Nth draw of every thread gives the same bytes, so
     thread scheduling does not matter);
   - answers the wall clock (clock_gettime CLOCK_REALTIME*, time, gettimeofday) with
     SOURCE_DATE_EPOCH plus one microsecond per call of the calling thread;
   - answers the monotonic clocks with their value when the shim loaded plus one microsecond
     per call of the calling thread;
   - gives the guest fixed file metadata (see pin()). Its filesystem calls reach the kernel
     through rustix's raw syscalls, out of reach of symbol interposition, and a change time
     cannot be set at all; so a seccomp filter traps raw statx calls (SIGSYS), and the handler
     makes the call itself (marked with an unused bit of the mask, which the filter lets
     through and the kernel ignores) and rewrites the result. That covers libc's statx too
     (wasmtime reads some metadata through Rust's std): the whole compiler process sees it.

   hatch_wasm_oci_shim_ready() says whether all of it is in place. */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__x86_64__)
#define SHIM_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SHIM_ARCH AUDIT_ARCH_AARCH64
#else
#error "hatch-wasm-oci's determinism shim supports x86_64 and aarch64 Linux"
#endif

/* The mask bit our own statx calls carry; the filter lets them through. No kernel defines it
   (STATX__RESERVED is 0x80000000; the highest flag in use is below 0x100000). */
#define MARK 0x40000000L

static uint64_t seed;
static int64_t epoch;
static int ready;
static __thread uint64_t draws;
static __thread uint64_t ticks;

/* -- randomness -------------------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill(void *buffer, size_t length) {
    uint64_t state = seed ^ (0xD1B54A32D192ED03ull * ++draws);
    unsigned char *out = buffer;
    while (length) {
        uint64_t word = splitmix(&state);
        size_t n = length < sizeof word ? length : sizeof word;
        memcpy(out, &word, n);
        out += n;
        length -= n;
    }
}

ssize_t getrandom(void *buffer, size_t length, unsigned int flags) {
    (void)flags;
    fill(buffer, length);
    return (ssize_t)length;
}

int getentropy(void *buffer, size_t length) {
    if (length > 256) {
        errno = EIO;
        return -1;
    }
    fill(buffer, length);
    return 0;
}

long syscall(long number, ...) {
    static long (*real)(long, ...);
    va_list args;
    va_start(args, number);
    long a[6];
    for (int i = 0; i < 6; i++) a[i] = va_arg(args, long);
    va_end(args);
    if (number == SYS_getrandom) {
        fill((void *)a[0], (size_t)a[1]);
        return a[1];
    }
    if (!real) real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
    return real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* -- the wall clock ---------------------------------------------------------------------- */

static struct timespec wall(void) {
    uint64_t tick = ticks++;
    struct timespec now = {(time_t)epoch + (time_t)(tick / 1000000), (long)(tick % 1000000) * 1000};
    return now;
}

/* The monotonic clocks start where the real one was when the shim loaded (so that deadlines
   computed from them stay near the kernel's) and advance one microsecond per call of the
   calling thread: the guest only sees differences (wasmtime measures from its start). */
static struct timespec start;
static __thread uint64_t steady_ticks;

static struct timespec steady(void) {
    uint64_t tick = steady_ticks++;
    int64_t nanos = (int64_t)start.tv_nsec + (int64_t)(tick % 1000000) * 1000;
    struct timespec now = {start.tv_sec + (time_t)(tick / 1000000) + (time_t)(nanos / 1000000000),
                           (long)(nanos % 1000000000)};
    return now;
}

int clock_gettime(clockid_t clock, struct timespec *out) {
    static int (*real)(clockid_t, struct timespec *);
    if (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE || clock == CLOCK_TAI) {
        *out = wall();
        return 0;
    }
    if (clock == CLOCK_MONOTONIC || clock == CLOCK_MONOTONIC_RAW || clock == CLOCK_MONOTONIC_COARSE
        || clock == CLOCK_BOOTTIME) {
        *out = steady();
        return 0;
    }
    if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    return real(clock, out);
}

time_t time(time_t *out) {
    time_t now = wall().tv_sec;
    if (out) *out = now;
    return now;
}

int gettimeofday(struct timeval *restrict out, void *restrict zone) {
    (void)zone;
    struct timespec now = wall();
    out->tv_sec = now.tv_sec;
    out->tv_usec = now.tv_nsec / 1000;
    return 0;
}

/* -- file times -------------------------------------------------------------------------- */

static long raw_statx(long dir, long path, long flags, long mask, long buffer) {
#if defined(__x86_64__)
    long result;
    register long r10 __asm__("r10") = mask;
    register long r8 __asm__("r8") = buffer;
    __asm__ volatile("syscall"
                     : "=a"(result)
                     : "a"((long)SYS_statx), "D"(dir), "S"(path), "d"(flags), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return result;
#else
    register long x8 __asm__("x8") = SYS_statx;
    register long x0 __asm__("x0") = dir;
    register long x1 __asm__("x1") = path;
    register long x2 __asm__("x2") = flags;
    register long x3 __asm__("x3") = mask;
    register long x4 __asm__("x4") = buffer;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
    return x0;
#endif
}

/* What the guest sees of a file: times SOURCE_DATE_EPOCH, no device, an inode number from the
   name and size (the real one differs on every run and reaches the guest through wasmtime's
   metadata hash), directory sizes 0 (they depend on the filesystem), one link per file. */
static void pin(const char *path, struct statx *out) {
    struct statx_timestamp fixed = {.tv_sec = epoch, .tv_nsec = 0};
    out->stx_atime = out->stx_mtime = out->stx_ctime = out->stx_btime = fixed;
    if (S_ISDIR(out->stx_mode)) out->stx_size = 0;
    if (S_ISREG(out->stx_mode)) out->stx_nlink = 1; /* the site-packages are hard links */
    uint64_t hash = 0xCBF29CE484222325ull;
    for (const char *p = path; p && *p; p++) hash = (hash ^ (unsigned char)*p) * 0x100000001B3ull;
    uint64_t size = out->stx_size;
    out->stx_ino = splitmix(&size) ^ hash;
    out->stx_dev_major = out->stx_dev_minor = 0;
}

static void on_sigsys(int signal, siginfo_t *info, void *context) {
    (void)signal;
    ucontext_t *uc = context;
#if defined(__x86_64__)
    greg_t *r = uc->uc_mcontext.gregs;
    long a0 = r[REG_RDI], a1 = r[REG_RSI], a2 = r[REG_RDX], a3 = r[REG_R10], a4 = r[REG_R8];
#else
    unsigned long long *r = uc->uc_mcontext.regs;
    long a0 = (long)r[0], a1 = (long)r[1], a2 = (long)r[2], a3 = (long)r[3], a4 = (long)r[4];
#endif
    long result = -ENOSYS;
    if (info->si_syscall == SYS_statx) {
        result = raw_statx(a0, a1, a2, a3 | MARK, a4);
        if (result == 0) pin((const char *)a1, (struct statx *)a4);
    }
#if defined(__x86_64__)
    r[REG_RAX] = result;
#else
    r[0] = (unsigned long long)result;
#endif
}

static int trap_statx(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sigsys;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGSYS, &action, NULL) != 0) return 0;
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SHIM_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_statx, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        /* the low half of the mask argument (little-endian) */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[3])),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, MARK, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
    };
    struct sock_fprog program = {(unsigned short)(sizeof filter / sizeof filter[0]), filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 0;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0;
}

__attribute__((constructor)) static void setup(void) {
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &start);
    const char *value = getenv("HATCH_WASM_OCI_SEED");
    seed = value ? strtoull(value, NULL, 16) : 0;
    value = getenv("SOURCE_DATE_EPOCH");
    epoch = value ? strtoll(value, NULL, 10) : 0;
    ready = value != NULL && trap_statx();
}

/* 1 when the randomness, clock and file times are all held (the compiler checks it). */
int hatch_wasm_oci_shim_ready(void) { return ready; }
