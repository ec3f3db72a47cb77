"""Instructor tools: releasing student notebooks, slides, Colab set-up.

Never imported by what learners run, so the student bundle can leave it out.
"""
