/** The engine's contract, shared by every front end: DTO types, the console's method table and its schemas. */
export type * from './types.js';
export type * from './console-types.js';
export * from './methods.js';
export * from './describe.js';
