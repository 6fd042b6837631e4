// Call timeouts of one breaker served by a single timer: a timer per call would cost more than the breaker.

/**
 * Something with a deadline that must be told when it passes. Entries link themselves into the
 * queue (no Set: hashing a fresh object per call costs more than the rest of the bookkeeping).
 */
export abstract class Deadline {
  /** @internal queue links */
  previous: Deadline | undefined;
  /** @internal queue links */
  next: Deadline | undefined;
  /** @internal whether the entry is in a queue */
  queued = false;

  /** @param deadline Epoch ms at which {@link Deadline.expire} is due. */
  constructor(readonly deadline: number) {}

  abstract expire(): void;
}

/**
 * The in-flight calls of one breaker. Arming and clearing a timer per call costs about as much as
 * all the rest of a closed-state call, so one timer is armed for the earliest deadline and, when it
 * fires, expires what is due and re-arms for the next. A call that settles is simply unlinked: the
 * timer is left to fire and find nothing due. The timer is unref'd, so it never holds a process open.
 */
export class DeadlineQueue {
  private head: Deadline | undefined;
  private tail: Deadline | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** When the armed timer fires; Infinity when none is armed. */
  private timerAt = Number.POSITIVE_INFINITY;

  add(entry: Deadline): void {
    entry.previous = this.tail;
    entry.next = undefined;
    if (this.tail) this.tail.next = entry;
    else this.head = entry;
    this.tail = entry;
    entry.queued = true;
    if (entry.deadline < this.timerAt) this.arm(entry.deadline);
  }

  remove(entry: Deadline): void {
    if (!entry.queued) return;
    entry.queued = false;
    if (entry.previous) entry.previous.next = entry.next;
    else this.head = entry.next;
    if (entry.next) entry.next.previous = entry.previous;
    else this.tail = entry.previous;
    entry.previous = undefined;
    entry.next = undefined;
  }

  private arm(at: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(this.fire, Math.max(0, at - Date.now()));
    this.timer.unref?.();
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    // Deadlines are mostly in start order, but a call may carry a shorter timeout: scan them all.
    let entry = this.head;
    while (entry) {
      const following = entry.next;
      if (entry.deadline <= now) {
        this.remove(entry);
        entry.expire();
      } else if (entry.deadline < next) {
        next = entry.deadline;
      }
      entry = following;
    }
    // An entry's expire() may start a call, whose add() armed the timer for it; that entry may lie
    // past the end of the scan, so keep that timer unless a scanned deadline is earlier still.
    if (next < this.timerAt) this.arm(next);
  };
}
