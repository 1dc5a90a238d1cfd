// Search by meaning at RATE per second (default 100) for DURATION:
// searchNotes by text 50% (a seeded note title, embedded by the server),
// the same filtered by a tag 20%, and Note.similar 30%.
// Thresholds: the published ones.

import { THRESHOLDS, constantArrival, perQuery } from '../lib/options.js';
import { data, pickUniform } from '../lib/data.js';
import { searchText, similarNotes } from '../lib/queries.js';

export const options = {
  scenarios: { vector: constantArrival() },
  thresholds: { ...THRESHOLDS, ...perQuery(['searchText', 'searchTextTag', 'similar']) },
};

export default function () {
  const r = Math.random();
  if (r < 0.5) {
    searchText();
  } else if (r < 0.7) {
    searchText(pickUniform(data.titles), pickUniform(data.tags));
  } else {
    similarNotes();
  }
}
