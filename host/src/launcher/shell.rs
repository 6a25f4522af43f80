//! POSIX shell quoting for the command lines launchers hand to a shell (a
//! Slurm batch script, ssh's remote command).
//!
//! Invariant: `sh_quote(x)` is read back by any POSIX shell (and fish) as
//! exactly the one word `x` for any UTF-8 `x` (single quotes, each `'`
//! written as `'\''`); bytes that are not UTF-8 are replaced by U+FFFD, so
//! [`EngineLaunch::validate`](super::EngineLaunch::validate) rejects such paths.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// One shell word for `word`. Plain words (letters, digits, `-_./=:,+@%`)
/// stay bare so scripts read naturally.
pub(crate) fn sh_quote(word: &OsStr) -> String {
    let bytes = word.as_bytes();
    let plain = !bytes.is_empty() && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(b));
    let text = String::from_utf8_lossy(bytes);
    if plain {
        return text.into_owned();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A command line of quoted words separated by spaces.
pub(crate) fn sh_join<I, S>(words: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    words.into_iter().map(|w| sh_quote(w.as_ref())).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn quoted_words_come_back_unchanged_through_sh() {
        let words = ["plain", "with space", "it's", "$HOME", "`id`", "a\"b", "", "--label=k=v", "x;rm -rf /", "tab\there", "new\nline"];
        let script = format!("for w in {}; do printf '%s\\0' \"$w\"; done", sh_join(words));
        let out = Command::new("sh").args(["-c", &script]).output();
        let out = match out {
            Ok(o) => o,
            Err(e) => panic!("sh: {e}"),
        };
        let back: Vec<&[u8]> = out.stdout.split(|&b| b == 0).collect();
        assert_eq!(back.len(), words.len() + 1, "{:?}", String::from_utf8_lossy(&out.stdout));
        for (w, b) in words.iter().zip(back) {
            assert_eq!(w.as_bytes(), b);
        }
        assert_eq!(sh_quote(OsStr::new("http://10.0.0.1:80")), "http://10.0.0.1:80");
    }
}
