/* LD_PRELOAD shim for storage fault tests: makes fsync/fdatasync fail on demand.
 *
 * Read on every call (so a test can switch faults on and off by changing its environment):
 *   FAILFS_PATH   fail only for descriptors whose path contains this substring
 *   FAILFS_AFTER  let this many matching calls succeed first (default 0)
 *   FAILFS_ERRNO  errno to fail with (default EIO)
 * Without FAILFS_PATH every call goes to libc unchanged.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long matched = 0;

static int should_fail(int fd) {
    const char *want = getenv("FAILFS_PATH");
    if (want == NULL || *want == '\0') return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0) return 0;
    path[n] = '\0';
    if (strstr(path, want) == NULL) return 0;
    const char *after = getenv("FAILFS_AFTER");
    long limit = after ? atol(after) : 0;
    if (__atomic_fetch_add(&matched, 1, __ATOMIC_SEQ_CST) < limit) return 0;
    const char *e = getenv("FAILFS_ERRNO");
    errno = e ? atoi(e) : EIO;
    return 1;
}

int fsync(int fd) {
    static int (*real)(int) = NULL;
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    if (should_fail(fd)) return -1;
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int) = NULL;
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    if (should_fail(fd)) return -1;
    return real(fd);
}
