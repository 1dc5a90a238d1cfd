// The query texts every scenario sends, and the published mix.
//
// The mix is verbatim from the issue that set the target (ids inlined in the
// document, as published): userList 30%, noteDetail 40%, userNotes 30%.

import { gql } from './graphql.js';
import { data, pickNoteId, pickUniform, pickUserId } from './data.js';
import { MIX_QUERIES } from './options.js';

// `extra` adds `gql` options (`{ response: true }` returns the response).

export const userList = (extra = {}) => gql('userList', '{ users(first: 20) { id name } }', { root: 'users', ...extra });

export const noteDetail = (id = pickNoteId(), extra = {}) =>
  gql('noteDetail', `{ note(id: "${id}") { id title author { name } } }`, { root: 'note', ...extra });

export const userNotes = (id = pickUserId(), extra = {}) =>
  gql('userNotes', `{ user(id: "${id}") { notes { id title tags { name } } } }`, { root: 'user', ...extra });

/** One request of the published mix, drawn by its weights (`extra`: `gql` options). */
export function mixRequest(extra = {}) {
  const r = Math.random();
  if (r < 0.3) {
    return userList(extra);
  }
  if (r < 0.7) {
    return noteDetail(undefined, extra);
  }
  return userNotes(undefined, extra);
}

/**
 * The list of issue 30: a page of 50 notes with their authors and tags,
 * the same document on every request (with the cache on, every request
 * after the first is a hit: run it with NOTEGRAPH_CACHE_ENABLED=false).
 * bench/baseline answers it too.
 */
export const notesPage = (extra = {}) =>
  gql('notesPage', '{ notes(first: 50) { id title author { name } tags { name } } }', { root: 'notes', ...extra });

/**
 * What `mix`, `ramp` and `overload` send: the published mix, or with
 * QUERY=nplus1 the page of 50 notes alone (`notesPage`).
 */
export const QUERY = __ENV.QUERY || 'mix';
if (QUERY !== 'mix' && QUERY !== 'nplus1') {
  throw new Error(`QUERY must be mix or nplus1, not ${QUERY}`);
}

/** The query names `loadRequest` sends, for per-query summaries. */
export const LOAD_QUERIES = QUERY === 'nplus1' ? ['notesPage'] : MIX_QUERIES;

/** One request of the load QUERY selects (`extra`: `gql` options). */
export function loadRequest(extra = {}) {
  return QUERY === 'nplus1' ? notesPage(extra) : mixRequest(extra);
}

// Beyond the mix: the rest of the read API, for `smoke` and `vector`.

export const notesList = () =>
  gql('notesList', '{ notes(first: 10) { id title author { name } tags { name } } }', { root: 'notes' });

export const notesByTag = (tag = pickUniform(data.tags)) =>
  gql('notesByTag', 'query($tag: String) { notes(first: 10, tag: $tag) { id title } }', {
    variables: { tag },
    root: 'notes',
  });

export const tagDetail = (name = pickUniform(data.tags)) =>
  gql('tagDetail', 'query($name: String!) { tag(name: $name) { id name noteCount notes(first: 5) { id } } }', {
    variables: { name },
    root: 'tag',
  });

export const tagList = () => gql('tagList', '{ tags(first: 50) { id name noteCount } }', { root: 'tags' });

export const me = () => gql('me', '{ me { id name email noteCount } }', { root: 'me' });

export const searchText = (text = pickUniform(data.titles), tag) =>
  gql(
    tag ? 'searchTextTag' : 'searchText',
    'query($text: String!, $tag: String) { searchNotes(text: $text, first: 10, tag: $tag) { score note { id title } } }',
    { variables: { text, tag }, root: 'searchNotes' },
  );

export const similarNotes = (id = pickNoteId()) =>
  gql('similar', `{ note(id: "${id}") { id similar(first: 5) { score note { id title } } } }`, { root: 'note' });

// Writes, as the viewer `test-token` stands for (user 1).

export const createNote = (title, body, tags) =>
  gql(
    'createNote',
    'mutation($input: CreateNoteInput!) { createNote(input: $input) { id title tags { name } } }',
    { variables: { input: { title, body, tags } }, root: 'createNote' },
  );

export const updateNote = (id, title) =>
  gql('updateNote', 'mutation($id: ID!, $title: String) { updateNote(id: $id, input: { title: $title }) { id title } }', {
    variables: { id, title },
    root: 'updateNote',
  });

export const deleteNote = (id) =>
  gql('deleteNote', 'mutation($id: ID!) { deleteNote(id: $id) }', { variables: { id }, root: 'deleteNote' });

/** A note read back after a write; null is the right answer after a delete. */
export const readNote = (id, { deleted = false } = {}) =>
  gql('readAfterWrite', `{ note(id: "${id}") { id title } }`, { root: 'note', nullable: deleted });

/** The newest note of the viewer, read back after a create. */
export const newestOwnNote = () =>
  gql('readAfterWrite', '{ me { notes(first: 1) { id } } }', { root: 'me' });
