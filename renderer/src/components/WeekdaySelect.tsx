/** The weekday of a schedule at a time of day, for the forms that make or change one. */
import { WEEKDAYS } from '../../../core/api/index.js';

/** The weekday of a time-of-day schedule (blank: every day); usable once a time is given. */
export function WeekdaySelect({ value, at, onChange }: { value: string; at: string; onChange: (weekday: string) => void }) {
  return (
    <select value={value} onChange={(e) => onChange(e.target.value)} name="on" disabled={!at} title={at ? undefined : 'give a time first'}>
      <option value="">every day</option>
      {WEEKDAYS.map((d) => (
        <option key={d} value={d}>
          {d[0].toUpperCase() + d.slice(1)}
        </option>
      ))}
    </select>
  );
}
