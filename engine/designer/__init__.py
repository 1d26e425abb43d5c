"""The app designer's engine side: business users build and change apps by clicking, never seeing JSON.

- `keys`: safe keys (`^[a-z][a-z0-9_]{0,62}$`) from labels in any language.
- `edits`: pure functions that change a definition document in place and keep it valid; bad input raises
  `EditError` with a path and a plain message naming the setting.
- `drafts`: drafts stored in the database: edits go to a draft, nothing changes for users until Publish applies
  the migration plan; two designers saving the same draft revision get `DraftConflict`, never a silent overwrite.
"""

from __future__ import annotations
