"""Teaching mode: what each step is for (`steps`) and short lessons (`lessons`).

`runtime.explain` prints the narration of `pyrun --explain`; this package
contains the words it prints, so a teacher can read or translate them in one
place.
"""
