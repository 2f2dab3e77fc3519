/**
 * The WebSocket close codes this daemon sends a peer, so that both modes
 * (and a client reading why its server closed) agree on what each means.
 *
 * @module
 */

/**
 * Close code for a peer cut for not reading. A 4xxx code: a WebSocket client
 * may send only 1000 and 3000-4999.
 */
export const NOT_READING = 4008;
/** Close code for a connection that did not say HELLO in time (policy). */
export const NO_HELLO = 4008;
/** Close code for a link whose name a newer connection took. */
export const REPLACED = 4009;

/** WebSocket close code for "going away", sent on shutdown. */
export const GOING_AWAY = 1001;
