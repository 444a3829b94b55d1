/*
 * ferrometal's pause program: the first process of every Pod sandbox on the test node.
 *
 * It holds the sandbox's namespaces open until the runtime stops it with SIGINT or SIGTERM,
 * and reaps any child re-parented to it (it is PID 1 when a Pod shares its PID namespace),
 * like registry.k8s.io/pause, which the harness cannot pull. Built with `gcc -static`.
 */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signal_number) {
    (void)signal_number;
    _exit(0);
}

static void reap(int signal_number) {
    (void)signal_number;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = stop;
    if (sigaction(SIGINT, &action, NULL) < 0 || sigaction(SIGTERM, &action, NULL) < 0) {
        return 1;
    }
    action.sa_handler = reap;
    action.sa_flags = SA_NOCLDSTOP;
    if (sigaction(SIGCHLD, &action, NULL) < 0) {
        return 2;
    }
    for (;;) {
        pause();
    }
}
