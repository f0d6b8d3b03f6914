/* Linked into the ESP32-like runtime with -Wl,--wrap=tcsetattr.
 *
 * The unix port switches its terminal into raw mode with TCSAFLUSH each time the REPL waits for a
 * line, which throws away whatever the host typed meanwhile: mpremote's "\r\x03\r\x01" (interrupt
 * main.py, enter the raw REPL) sent in one write loses its Ctrl-A when the interrupt lands in
 * running code, and the host waits forever. An ESP32 keeps bytes in its UART's receive buffer until
 * the REPL reads them; this keeps them too (TCSANOW: switch mode, discard nothing).
 */
#include <termios.h>

int __real_tcsetattr(int fd, int action, const struct termios *t);

int __wrap_tcsetattr(int fd, int action, const struct termios *t) {
    return __real_tcsetattr(fd, action == TCSAFLUSH ? TCSANOW : action, t);
}
