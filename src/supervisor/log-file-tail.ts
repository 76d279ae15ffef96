import { closeSync, fstatSync, ftruncateSync, openSync, readSync, statSync } from 'node:fs';

/**
 * Follows a log file a child writes (a plan's `run.log_file`): new bytes
 * are read every POLL_MS and handed on; a file replaced, or found shorter
 * than what was read, is read again from its start; one grown past
 * maxBytes is truncated once read (the child appends with O_APPEND, as
 * etcd's logger does, so its next line lands at the new start; a line
 * written between that read and the truncation is lost). Nobody else is
 * expected to truncate it: a truncation followed by more than was read
 * before the next poll would be taken for growth.
 *
 * Why a file at all: a child's stdout and stderr are pipes to this
 * process, and when it dies (a crash, kill -9) the pipes break. PostgreSQL
 * and the JVM ignore SIGPIPE, but a Go program such as etcd dies of it at
 * its next log line even with SIGPIPE ignored (Go's runtime raises it for
 * writes to fds 1 and 2): an etcd voter adopted by a restarted supervisor
 * then fell over seconds later. A file outlives the supervisor.
 */
const POLL_MS = 250;
const READ_CHUNK = 64 * 1024;

export class LogFileTail {
  private offset = 0;
  private inode = -1;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly file: string,
    private readonly onData: (chunk: Buffer) => void,
    private readonly maxBytes = 64 * 1024 * 1024,
  ) {}

  /** Starts following from the file's current end: what is there was written before (and shipped by a previous supervisor). */
  start(): void {
    if (this.timer) return;
    try {
      const st = statSync(this.file);
      this.offset = st.size;
      this.inode = st.ino;
    } catch {
      this.offset = 0;
    }
    this.timer = setInterval(() => this.poll(), POLL_MS);
    this.timer.unref();
  }

  /** Reads what is left, then stops. */
  stop(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.poll();
  }

  /** Reads whatever was appended since the last poll (exposed for tests). */
  poll(): void {
    let fd: number;
    try {
      fd = openSync(this.file, 'r+');
    } catch {
      return; // not written yet, or gone: the next poll looks again
    }
    try {
      const st = fstatSync(fd);
      if (st.ino !== this.inode || st.size < this.offset) {
        this.inode = st.ino;
        this.offset = 0;
      }
      const buf = Buffer.allocUnsafe(READ_CHUNK);
      while (this.offset < st.size) {
        const n = readSync(fd, buf, 0, Math.min(READ_CHUNK, st.size - this.offset), this.offset);
        if (n <= 0) break;
        this.offset += n;
        this.onData(Buffer.from(buf.subarray(0, n)));
      }
      if (this.offset >= this.maxBytes) {
        ftruncateSync(fd, 0);
        this.offset = 0;
      }
    } catch {
      // a read error is retried at the next poll
    } finally {
      closeSync(fd);
    }
  }
}
