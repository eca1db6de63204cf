// Turns a stream of token byte pieces into text that is safe to show: whole UTF-8 characters
// only, and nothing that could still turn out to be the start of a stop string.

import { InvalidOptionError } from "../errors.js";

export class TextAssembler {
  private readonly decoder = new TextDecoder("utf-8");
  /** All text decoded so far, cut before the first stop string once one is seen. */
  private text = "";
  /** How much of `text` has been handed out by takeReady(). */
  private shown = 0;
  private stopped = false;
  /** Length of the longest stop string: how far back a new piece can complete one. */
  private readonly longestStop: number;

  constructor(private readonly stops: readonly string[]) {
    for (const s of stops) if (s.length === 0) throw new InvalidOptionError("stop strings must not be empty");
    this.longestStop = stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** Adds one token's bytes; returns true when a stop string has now appeared. */
  push(bytes: Uint8Array): boolean {
    if (this.stopped) return true;
    const searchFrom = Math.max(0, this.text.length - this.longestStop);
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

  /** Length of the longest suffix of the text that is a proper prefix of a stop string. */
  private pendingStopPrefix(): number {
    let best = 0;
    for (const stop of this.stops) {
      for (let k = Math.min(stop.length - 1, this.text.length); k > best; k--) {
        if (this.endsWithPrefix(stop, k)) {
          best = k;
          break;
        }
      }
    }
    return best;
  }

  /** Whether the text ends with stop[0 .. k) (compared in place: this runs for every token). */
  private endsWithPrefix(stop: string, k: number): boolean {
    const from = this.text.length - k;
    for (let i = 0; i < k; i++) if (this.text.charCodeAt(from + i) !== stop.charCodeAt(i)) return false;
    return true;
  }
}
