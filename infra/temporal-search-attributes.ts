// BorgCube's custom Temporal search attributes, in one place: the dev server registers them at
// start (`--search-attribute`), the local stack and the test setup register them on a server they
// reuse, and the code that starts workflows sets them with these typed keys. Workflows cannot
// import infra/ (lint fence); they receive the values as workflow input or set nothing.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const searchAttributes = {
  /** backup | restore | prune | check … (the workflow's job kind). */
  jobKind: defineSearchAttributeKey('BorgcubeJobKind', SearchAttributeType.KEYWORD),
  /** The client's name. */
  client: defineSearchAttributeKey('BorgcubeClient', SearchAttributeType.KEYWORD),
  /** The repository's name. */
  repository: defineSearchAttributeKey('BorgcubeRepository', SearchAttributeType.KEYWORD),
} as const;

// The spelling `temporal server start-dev --search-attribute NAME=TYPE` expects.
const cliTypeNames: Record<SearchAttributeType, string> = {
  TEXT: 'Text',
  KEYWORD: 'Keyword',
  INT: 'Int',
  DOUBLE: 'Double',
  BOOL: 'Bool',
  DATETIME: 'Datetime',
  KEYWORD_LIST: 'KeywordList',
};

/** `--search-attribute NAME=TYPE …` arguments for `temporal server start-dev`. */
export function searchAttributeCliArgs(): string[] {
  return Object.values(searchAttributes).flatMap((k) => ['--search-attribute', `${k.name}=${cliTypeNames[k.type]}`]);
}
