"""Results: evaluation points and their error bars, training compute, what SFT showed
(recall or skill), and the Markdown report with plots of one or more run directories."""
