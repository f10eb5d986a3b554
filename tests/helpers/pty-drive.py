#!/usr/bin/env python3
"""Drive a program in a pseudo-terminal, as a person at a keyboard would.

Reads a JSON script on stdin:
  {"argv": [...], "env": {...}, "cwd": "...", "timeout": 30, "cols": 120,
   "steps": [{"expect": "regex"}, {"send": "text"}, {"expect": "...", "send": "..."}]}
Each step first waits (up to the timeout) until the output since the previous
match contains `expect`, then types `send`. Prints one JSON object:
  {"exit": code-or-null, "signal": n-or-null, "transcript": "...", "failed_step": i-or-null}
Only the standard library: every machine with python3 can run it.
"""
import fcntl, json, os, pty, re, select, signal, struct, sys, termios, time

def main():
    script = json.load(sys.stdin)
    deadline_each = float(script.get("timeout", 30))
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(script.get("cwd", "."))
        env = dict(script.get("env", {}))
        env.setdefault("TERM", "xterm")
        os.execvpe(script["argv"][0], script["argv"], env)
    # A real terminal has a size; without one, prompts wrap at every character.
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, int(script.get("cols", 120)), 0, 0))
    transcript = b""
    seen_upto = 0
    failed = None

    def read_some(timeout):
        nonlocal transcript
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            return True
        try:
            data = os.read(fd, 65536)
        except OSError:
            return False
        if not data:
            return False
        transcript += data
        return True

    for i, step in enumerate(script["steps"]):
        if "expect" in step:
            pattern = re.compile(step["expect"].encode())
            end = time.time() + deadline_each
            matched = None
            while time.time() < end:
                matched = pattern.search(transcript, seen_upto)
                if matched:
                    break
                if not read_some(0.1):
                    matched = pattern.search(transcript, seen_upto)
                    break
            if not matched:
                failed = i
                break
            seen_upto = matched.end()
        if "send" in step:
            os.write(fd, step["send"].encode())
    if failed is not None:
        os.kill(pid, signal.SIGKILL)
    end = time.time() + deadline_each
    status = None
    while time.time() < end:
        if not read_some(0.1):
            pass
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            break
    if status is None:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    while read_some(0.05):
        pass
    print(json.dumps({
        "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "transcript": transcript.decode("utf-8", "replace"),
        "failed_step": failed,
    }))

main()
