/** `text` as a regular-expression source that matches it literally (paths with dots, brackets, plus signs). */
export function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
