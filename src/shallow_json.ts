/**
 * Reading JSON text without decoding it: how deep it nests, and the scalar
 * values of a few top-level keys. A message too deep to decode safely is
 * refused, and these let its answer still carry its `id` (and a peer's
 * `ref`), as every answer to a readable id must.
 *
 * @module
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The nesting depth of JSON text, counting brackets outside strings; stops
 * counting past `limit`. Text shorter than the limit cannot be deeper, so the
 * usual small message is not scanned at all.
 */
export function nestingDepth(text: string, limit: number): number {
  if (text.length <= limit) return 0;
  let depth = 0;
  let deepest = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) i = stringEnd(text, i);
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > deepest && (deepest = depth) > limit) return deepest;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return deepest;
}

/** The index of the quote that closes the string opening at `start`. */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === BACKSLASH) i++;
    else if (c === QUOTE) return i;
  }
  return text.length;
}

/** The top-level `id` (a string or a finite number) and `ref` (a string). */
export interface TopLevelKeys {
  id?: string | number;
  hasId: boolean;
  ref?: string;
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/**
 * Reads `id` and `ref` off the top level of an object's text, skipping
 * every nested value by its brackets; the last of repeated keys wins, as in
 * JSON.parse. Values of other types are not read (an id that is neither a
 * string nor a number could not be echoed anyway).
 */
export function topLevelKeys(text: string): TopLevelKeys {
  const found: TopLevelKeys = { hasId: false };
  let depth = 0;
  let key: string | undefined;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      if (depth === 1) {
        const value = decodeString(text.slice(i, end + 1));
        if (expectKey) key = value;
        else if (key !== undefined) assign(found, key, value);
        if (!expectKey) key = undefined;
        expectKey = false;
      }
      i = end;
    } else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth === 1) expectKey = c === 0x7b;
      else if (depth === 2 && key !== undefined) {
        if (key === "id") found.hasId = false;
        key = undefined;
      }
    } else if (c === 0x7d || c === 0x5d) depth--;
    else if (depth === 1 && c === 0x2c) expectKey = true;
    else if (depth === 1 && key !== undefined && !expectKey) {
      NUMBER.lastIndex = i;
      const match = NUMBER.exec(text);
      if (match) {
        const n = Number(match[0]);
        assign(found, key, Number.isFinite(n) ? n : undefined);
        key = undefined;
        i += match[0].length - 1;
      } else if (c > 0x20 && c !== 0x3a) {
        // true, false, null: not an id this daemon echoes.
        if (key === "id") found.hasId = false;
        key = undefined;
      }
    }
  }
  return found;
}

function assign(found: TopLevelKeys, key: string, value: unknown): void {
  if (key === "id") {
    const ok = typeof value === "string" || typeof value === "number";
    found.hasId = ok;
    found.id = ok ? value as string | number : undefined;
  } else if (key === "ref" && typeof value === "string") found.ref = value;
}

function decodeString(literal: string): string | undefined {
  try {
    return JSON.parse(literal);
  } catch {
    return undefined;
  }
}
