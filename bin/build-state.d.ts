/** See build-state.js. */
export declare const ROOT: string;
export declare const SRC: string;
export declare const STAMP: string;
export declare function buildIsFresh(): boolean;
