// A graceful stop on SIGINT or SIGTERM (Ctrl-C, a scheduler's preemption notice): the handler only records the
// signal, and the program polls stop_signal() at a point where it can save its state and exit cleanly (a training
// loop: a step boundary, agreed over the ranks). A second signal while the first is pending takes the default
// action, so a program that does not reach such a point can still be ended by signalling it again.
#pragma once

namespace braid::examples {

// Installs the handlers for SIGINT and SIGTERM (throws braid::Error if sigaction fails).
void install_stop_signal_handlers();
// The first SIGINT or SIGTERM received since install_stop_signal_handlers, or 0.
int stop_signal();
// "SIGINT", "SIGTERM", or "another signal".
const char* signal_name(int signal);

}  // namespace braid::examples
