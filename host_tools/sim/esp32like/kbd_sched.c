/* Linked into the ESP32-like runtime with -Wl,--wrap=sigaction (and MICROPY_ASYNC_KBD_INTR off).
 *
 * The unix port's standard build raises KeyboardInterrupt from inside its SIGINT handler (a
 * longjmp out of whatever C code was running). A Ctrl-C that lands inside the garbage collector
 * leaves the heap locked ("memory allocation failed, heap is locked", then "FATAL: uncaught NLR"),
 * inside an import leaves the qstr lock taken, inside an allocation leaves the heap half-updated.
 * An ESP32 never does that: its UART interrupt schedules the KeyboardInterrupt, and the VM raises
 * it at its next check, between bytecodes or when a blocking call returns. This handler does the
 * same (mp_sched_keyboard_interrupt), and, as on the board, a second Ctrl-C before the first is
 * raised is simply the same pending interrupt: the unix port's non-async handler exits instead.
 */
#include <signal.h>
#include <string.h>

void mp_sched_keyboard_interrupt(void);
int __real_sigaction(int sig, const struct sigaction *act, struct sigaction *old);

static void board_ctrl_c(int sig) {
    (void)sig;
    mp_sched_keyboard_interrupt();
}

int __wrap_sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    if (sig == SIGINT && act != NULL && act->sa_handler != SIG_DFL && act->sa_handler != SIG_IGN) {
        struct sigaction mine;
        memcpy(&mine, act, sizeof mine);
        mine.sa_handler = board_ctrl_c;
        return __real_sigaction(sig, &mine, old);
    }
    return __real_sigaction(sig, act, old);
}
