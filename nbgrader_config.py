"""nbgrader settings for the course (used by `make release` and by instructors).

The instructor notebooks in solutions/ are nbgrader's source; the student
notebooks in notebooks/ are its release.
"""

c = get_config()  # noqa: F821 (provided by nbgrader)

c.CourseDirectory.course_id = "pytorch-course"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".*"]

# What the learner sees where a solution was.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Autograding runs every notebook in fast mode, with a per-cell time limit.
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True

# nbclient can miss a kernel's reply and wait out the whole time limit (in cells with an Output
# widget); the course's helpers make it look at the socket every second instead.
try:
    from helpers.course.polling import patch_nbclient
except ImportError:  # the helpers package is not installed where nbgrader runs: plain nbclient
    pass
else:
    patch_nbclient()
