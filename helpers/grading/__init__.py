"""Grading a whole class with nbgrader: submission layouts, parallel autograde in a
sandbox, grade sheets, feedback and the student bundle.

For instructors only: nothing a learner imports uses this package, and the student
bundle leaves it out. ``python -m helpers.grading --help`` shows the commands.
"""
