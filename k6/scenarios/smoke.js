// Every query and mutation of the API a few times, from one VU, with the
// read-after-write checks of the writes scenario: a quick "does it all
// answer" before a longer run. No failure and no stale read allowed.

import { perQuery } from '../lib/options.js';
import {
  me, mixRequest, noteDetail, notesByTag, notesList, searchText, similarNotes, tagDetail, tagList, userList,
  userNotes,
} from '../lib/queries.js';
import { data, pickUniform } from '../lib/data.js';
import { createAndRead, deleteAndRead, updateAndRead } from '../lib/writes.js';

export const options = {
  scenarios: { smoke: { executor: 'per-vu-iterations', vus: 1, iterations: 3, maxDuration: '60s' } },
  thresholds: {
    failures: ['rate==0'],
    stale_reads: ['count==0'],
    checks: ['rate==1'],
    ...perQuery([
      'userList', 'noteDetail', 'userNotes', 'notesList', 'notesByTag', 'tagDetail', 'tagList', 'me', 'searchText',
      'searchTextTag', 'similar', 'createNote', 'updateNote', 'deleteNote', 'readAfterWrite',
    ]),
  },
};

export default function () {
  userList();
  noteDetail();
  userNotes();
  for (let i = 0; i < 5; i++) {
    mixRequest();
  }
  notesList();
  notesByTag();
  tagDetail();
  tagList();
  me();
  searchText();
  searchText(pickUniform(data.titles), pickUniform(data.tags));
  similarNotes();
  createAndRead();
  updateAndRead();
  deleteAndRead();
}
