/** The client the stores use (set once at start-up; tests set a direct client over a real engine). */
import type { Client } from './client.js';

let current: Client | null = null;

export function setClient(client: Client): void {
  current = client;
}

export function client(): Client {
  if (!current) throw new Error('no client: setClient() first');
  return current;
}
