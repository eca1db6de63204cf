// Turns a stream of token byte pieces into text that is safe to show: whole UTF-8 characters
// only, and nothing that could still turn out to be the start of a stop string.

export class TextAssembler {
  private readonly decoder = new TextDecoder("utf-8");
  /** All text decoded so far, cut before the first stop string once one is seen. */
  private text = "";
  /** How much of `text` has been handed out by takeReady(). */
  private shown = 0;
  private stopped = false;

  constructor(private readonly stops: readonly string[]) {
    for (const s of stops) if (s.length === 0) throw new Error("stop strings must not be empty");
  }

  /** Adds one token's bytes; returns true when a stop string has now appeared. */
  push(bytes: Uint8Array): boolean {
    if (this.stopped) return true;
    const searchFrom = Math.max(0, this.text.length - this.longestStop());
    this.text += this.decoder.decode(bytes, { stream: true });
    for (const stop of this.stops) {
      const at = this.text.indexOf(stop, searchFrom);
      if (at >= 0) {
        this.text = this.text.slice(0, at);
        this.stopped = true;
      }
    }
    return this.stopped;
  }

  /** Text that can no longer change: excludes a tail that may be the start of a stop string. */
  takeReady(): string {
    const end = this.stopped ? this.text.length : this.text.length - this.pendingStopPrefix();
    if (end <= this.shown) return "";
    const piece = this.text.slice(this.shown, end);
    this.shown = end;
    return piece;
  }

  /** Flushes everything still held back (end of generation). */
  finish(): string {
    if (!this.stopped) this.text += this.decoder.decode();
    const piece = this.text.slice(this.shown);
    this.shown = this.text.length;
    return piece;
  }

  get fullText(): string {
    return this.text;
  }

  private longestStop(): number {
    let longest = 0;
    for (const s of this.stops) longest = Math.max(longest, s.length);
    return longest;
  }

  /** Length of the longest suffix of the text that is a proper prefix of a stop string. */
  private pendingStopPrefix(): number {
    let best = 0;
    for (const stop of this.stops) {
      for (let k = Math.min(stop.length - 1, this.text.length); k > best; k--) {
        if (this.text.endsWith(stop.slice(0, k))) {
          best = k;
          break;
        }
      }
    }
    return best;
  }
}
