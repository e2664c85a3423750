'use strict';

/**
 * The iterator `Client.watchTask` returns: a task's snapshots from WatchTask
 * streams, opened again after a break, and stoppable at any time.
 *
 * @module weft/watch
 */

const { setTimeout: sleep } = require('node:timers/promises');
const grpc = require('@grpc/grpc-js');
const { WeftError } = require('./errors');
const { parseDuration } = require('./values');

/**
 * Reconnections of a watch in a row, without an event between, before it
 * gives up: as the Python client's WATCH_RECONNECTS.
 */
const WATCH_RECONNECTS = 8;

/** The wait before reconnection n (1, 2, ...): 0.1 s, then twice as long, at most 2 s. */
function backoffMs(reconnection) {
  return Math.min(100 * 2 ** (reconnection - 1), 2000);
}

// What stops a watch because its consumer left (return()); never seen outside.
const RETURNED = Symbol('returned');

function isGrpcError(err) {
  return err instanceof Error && err.metadata instanceof grpc.Metadata;
}

/**
 * The error a watch stopped by its AbortSignal rejects with: an Error named
 * "AbortError" (code "ABORT_ERR"), as Node's own APIs reject with, the
 * signal's reason as its `cause`.
 */
function abortError(name, signal) {
  const err = new Error(`the watch of ${name} was aborted`, { cause: signal.reason });
  err.name = 'AbortError';
  err.code = 'ABORT_ERR';
  return err;
}

/**
 * An async iterator of a task's snapshots (see Client.watchTask).
 *
 * Whatever stops it (return(), its signal, its deadline, the client's
 * close()) cancels the stream open at once, and a next() waiting for an
 * event settles: with `{done: true}` after return(), else rejecting with
 * what stopped it.
 */
class TaskWatch {
  #name;
  #open;
  #convert;
  #isTerminal;
  #signal;
  #timeoutMs;
  #inFlight;
  #steps;
  #state = 'new'; // 'new', 'active' (iterated), 'finished'
  #reason = null; // what stopped the watch: RETURNED or the error to throw
  #stopController = new AbortController();
  #stopped; // rejects with #reason once stopped
  #stream = null;
  #timer = null;
  #onAbort = null;
  #handle = { cancel: (reason) => this.#stop(reason) };

  /**
   * @param {string} name The task's name.
   * @param {object} options
   * @param {(afterSequence: number) => import('@grpc/grpc-js').ClientReadableStream} options.open
   *     Opens a WatchTask stream.
   * @param {(event: object) => {sequence: number, task: object}} options.convert
   * @param {(task: object) => boolean} options.isTerminal
   * @param {AbortSignal} [options.signal]
   * @param {number|string} [options.timeout] Bounds the whole watch, in seconds.
   * @param {Set<{cancel: function}>} options.inFlight The client's calls in
   *     flight: the watch is there while it is iterated.
   */
  constructor(name, { open, convert, isTerminal, signal, timeout, inFlight }) {
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new TypeError(`signal: expected an AbortSignal, got ${String(signal)}`);
    }
    if (timeout !== undefined) {
      const { seconds, nanos } = parseDuration(timeout, 'timeout');
      this.#timeoutMs = Math.max(seconds * 1000 + nanos / 1e6, 0);
    }
    this.#name = name;
    this.#open = open;
    this.#convert = convert;
    this.#isTerminal = isTerminal;
    this.#signal = signal;
    this.#inFlight = inFlight;
    this.#stopped = new Promise((_, reject) => {
      this.#stopController.signal.addEventListener('abort', () => reject(this.#reason), { once: true });
    });
    this.#stopped.catch(() => {}); // rejected without anyone waiting on it: no unhandled rejection
    this.#steps = this.#run();
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  /**
   * The next snapshot.
   *
   * @returns {Promise<IteratorResult<object>>}
   */
  async next() {
    this.#start();
    try {
      const result = await this.#steps.next();
      if (result.done) this.#finish();
      return result;
    } catch (err) {
      this.#finish();
      if (err === RETURNED) return { done: true, value: undefined };
      throw err;
    }
  }

  /**
   * Stops the watch: the stream is cancelled at once, even while a next()
   * waits (it then resolves `{done: true}`).
   *
   * @returns {Promise<IteratorResult<object>>}
   */
  async return(value) {
    this.#stop(RETURNED);
    // Runs once a next() waiting has settled, which the stop made prompt.
    await this.#steps.return().catch(() => {});
    this.#finish();
    return { done: true, value };
  }

  /**
   * Stops the watch as return() does, then rejects with `err`.
   *
   * @returns {Promise<never>}
   */
  async throw(err) {
    await this.return();
    throw err;
  }

  // First next(): the deadline starts, the signal is listened to, and the
  // client's close() can find the watch.
  #start() {
    if (this.#state !== 'new') return;
    this.#state = 'active';
    this.#inFlight.add(this.#handle);
    if (this.#signal) {
      if (this.#signal.aborted) {
        this.#stop(abortError(this.#name, this.#signal));
        return;
      }
      this.#onAbort = () => this.#stop(abortError(this.#name, this.#signal));
      this.#signal.addEventListener('abort', this.#onAbort, { once: true });
    }
    if (this.#timeoutMs !== undefined) {
      const seconds = this.#timeoutMs / 1000;
      this.#timer = setTimeout(() => {
        this.#stop(new WeftError({
          code: grpc.status.DEADLINE_EXCEEDED,
          details: `the watch of ${this.#name} did not end within ${seconds} s`,
        }));
      }, this.#timeoutMs);
    }
  }

  #stop(reason) {
    if (this.#reason !== null || this.#state === 'finished') return;
    this.#reason = reason;
    this.#stopController.abort();
    this.#cancelStream();
    if (this.#state === 'new') this.#finish();
  }

  #finish() {
    this.#state = 'finished';
    this.#inFlight.delete(this.#handle);
    clearTimeout(this.#timer);
    if (this.#onAbort) this.#signal.removeEventListener('abort', this.#onAbort);
    this.#onAbort = null;
    this.#cancelStream();
  }

  #cancelStream() {
    const stream = this.#stream;
    this.#stream = null;
    // The CANCELLED status it then reports is our own doing.
    if (stream) stream.cancel();
  }

  // `promise`'s result, unless the watch stops first: then what stopped it.
  async #unlessStopped(promise) {
    promise.catch(() => {});
    try {
      return await Promise.race([this.#stopped, promise]);
    } catch (err) {
      throw this.#reason ?? err;
    }
  }

  #checkStopped() {
    if (this.#reason !== null) throw this.#reason;
  }

  async *#run() {
    let afterSequence = 0;
    let reconnections = 0;
    for (;;) {
      this.#checkStopped();
      const stream = this.#open(afterSequence);
      stream.on('error', () => {}); // read below through the iterator
      this.#stream = stream;
      const events = stream[Symbol.asyncIterator]();
      let broken = null;
      try {
        for (;;) {
          const { done, value } = await this.#unlessStopped(events.next());
          if (done) break;
          const { sequence, task } = this.#convert(value);
          afterSequence = sequence;
          reconnections = 0;
          yield task;
          if (this.#isTerminal(task)) return;
          this.#checkStopped();
        }
      } catch (err) {
        if (err === this.#reason || !isGrpcError(err)) throw err;
        broken = WeftError.fromServiceError(err);
        if (err.code !== grpc.status.UNAVAILABLE) throw broken;
      } finally {
        if (this.#stream === stream) this.#cancelStream();
      }
      // The stream broke (UNAVAILABLE) or ended before the task did: watched
      // again from the last event seen.
      if (reconnections === WATCH_RECONNECTS) {
        throw broken ?? new WeftError({
          code: grpc.status.UNAVAILABLE,
          details: `the watch of ${this.#name} ended before the task did (${WATCH_RECONNECTS} reconnections)`,
        });
      }
      reconnections += 1;
      await this.#unlessStopped(sleep(backoffMs(reconnections), undefined, { signal: this.#stopController.signal }));
    }
  }
}

module.exports = { TaskWatch, WATCH_RECONNECTS };
