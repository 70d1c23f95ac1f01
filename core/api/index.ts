/** The engine's contract, shared by every front end: DTO types (and, later, the method table and schemas). */
export type * from './types.js';
