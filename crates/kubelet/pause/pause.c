/* rkube's pod sandbox ("pause") program.
 *
 * It holds the pod's namespaces open and does nothing else, like Kubernetes' pause:
 *   - sleeps forever;
 *   - as PID 1 of a shared PID namespace it is the reaper of orphans, so it reaps every
 *     child on SIGCHLD (otherwise they would stay zombies);
 *   - exits 0 on SIGINT or SIGTERM, so StopPodSandbox is quick and reports success.
 * Built with `gcc -static` by the crate's build.rs; it needs no libc in the image. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *msg) {
  /* write(2) is async-signal-safe, stdio is not. */
  ssize_t ignored = write(STDERR_FILENO, msg, strlen(msg));
  (void)ignored;
}

static void on_shutdown(int signo) {
  say(signo == SIGINT ? "pause: SIGINT, exiting\n" : "pause: SIGTERM, exiting\n");
  _exit(0);
}

static void on_child(int signo) {
  (void)signo;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  if (getpid() != 1) say("pause: warning: not PID 1\n");

  struct sigaction down;
  memset(&down, 0, sizeof down);
  down.sa_handler = on_shutdown;
  if (sigaction(SIGINT, &down, NULL) < 0 || sigaction(SIGTERM, &down, NULL) < 0) return 1;

  struct sigaction reap;
  memset(&reap, 0, sizeof reap);
  reap.sa_handler = on_child;
  reap.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  if (sigaction(SIGCHLD, &reap, NULL) < 0) return 2;

  for (;;) pause();
  return 42; /* not reached */
}
