/* socket() + close() in a loop: nanoseconds per pair, best of ROUNDS rounds of N.
 * Usage: socket_cost PROTOCOL N ROUNDS   (PROTOCOL 0 for plain TCP, 262 for MPTCP) */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    int protocol = atoi(argv[1]), n = atoi(argv[2]), rounds = atoi(argv[3]);
    double best = 1e300;
    int seen = -1;
    for (int r = 0; r < rounds; r++) {
        double start = now();
        for (int i = 0; i < n; i++) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, protocol);
            if (fd < 0) { perror("socket"); return 1; }
            if (i == 0 && r == 0) {
                socklen_t len = sizeof(seen);
                getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &seen, &len);
            }
            close(fd);
        }
        double each = (now() - start) / n;
        if (each < best) best = each;
    }
    printf("{\"ns_per_socket\": %.1f, \"protocol\": %d}\n", best, seen);
    return 0;
}
