/** This daemon's version, announced in HELLO and printed by `--version`. */
export const VERSION = "0.1.0";
