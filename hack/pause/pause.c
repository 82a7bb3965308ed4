/*
 * pause: the process that holds a pod sandbox's namespaces open.
 *
 * containerd starts one per pod (its `sandbox_image`). It must do nothing, stay
 * tiny, exit at once and cleanly on SIGTERM/SIGINT (so pod teardown is quick), and
 * reap zombies when it is PID 1 of a pod that shares its PID namespace.
 * Built static (`gcc -Os -static -s`, hack/build-node-images.sh), so the image is this
 * one file and needs no libc from a base image.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig) {
  (void)sig;
  _exit(0);
}

static void on_child(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

static void handle(int sig, void (*fn)(int)) {
  struct sigaction sa = {0};
  sa.sa_handler = fn;
  sa.sa_flags = SA_RESTART | (sig == SIGCHLD ? SA_NOCLDSTOP : 0);
  sigemptyset(&sa.sa_mask);
  if (sigaction(sig, &sa, NULL) < 0) {
    _exit(1);
  }
}

int main(void) {
  handle(SIGINT, on_term);
  handle(SIGTERM, on_term);
  handle(SIGCHLD, on_child);
  for (;;) {
    pause();
  }
  return 42; /* not reached */
}
