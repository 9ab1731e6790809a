"""For the classroom: a student release, an autograder that writes a gradebook, the course as a website.

* :mod:`~thinlab.classroom.release`: ``python -m thinlab.course release OUT`` (student notebooks + manifest)
* :mod:`~thinlab.classroom.grade`: ``python -m thinlab.course grade SUBMISSIONS --out gradebook.csv``
* :mod:`~thinlab.classroom.site`: ``make site`` (``python -m thinlab.course site``), build/site/

Taught in: the classroom tools (README, "Teaching with thinlab"), not a lesson
"""
