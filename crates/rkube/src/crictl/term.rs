//! The local terminal for `exec -it`: raw mode while the command runs (keys, Ctrl-C
//! included, go to the container's terminal, which echoes them) and its size.

use std::io::IsTerminal;

pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Stdin's terminal in raw mode until dropped, when its previous settings come back.
pub struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    pub fn enable() -> anyhow::Result<RawMode> {
        let mut t = std::mem::MaybeUninit::<libc::termios>::zeroed();
        // SAFETY: fd 0 and a termios buffer valid for writing.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, t.as_mut_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // SAFETY: tcgetattr succeeded and filled it.
        let saved = unsafe { t.assume_init() };
        let mut raw = saved;
        // SAFETY: `raw` is a valid termios.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: fd 0 and a valid termios.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: fd 0 and the settings read from it before.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved) };
    }
}

/// The terminal's (columns, rows), from stdout, else stdin.
pub fn size() -> Option<(u16, u16)> {
    for fd in [libc::STDOUT_FILENO, libc::STDIN_FILENO] {
        let mut ws = std::mem::MaybeUninit::<libc::winsize>::zeroed();
        // SAFETY: TIOCGWINSZ fills a winsize; the buffer is valid for writing.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, ws.as_mut_ptr()) } == 0 {
            // SAFETY: the ioctl succeeded.
            let ws = unsafe { ws.assume_init() };
            if ws.ws_col > 0 {
                return Some((ws.ws_col, ws.ws_row));
            }
        }
    }
    None
}
